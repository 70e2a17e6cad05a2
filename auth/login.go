package auth

import (
	"context"
	"errors"
	"strings"

	"github.com/berth-dev/berth/core"
)

// AuthenticateBasic checks a username and password (or a personal token
// given as the password, as podman login does with registry login tokens).
//
// Failures are rate limited per (username, clientIP): after the configured
// burst, attempts fail with a *RateLimitError until the bucket refills. A
// wrong password, an unknown or inactive user and an unusable token all fail
// alike with ErrInvalidCredentials, and unknown users cost the same
// argon2id computation as known ones.
func (s *Service) AuthenticateBasic(ctx context.Context, username, password, clientIP string, use Usage) (*Principal, error) {
	if err := s.limiter.check(username, clientIP); err != nil {
		s.log.WarnContext(ctx, "login refused: too many failures", "username", username, "client_ip", clientIP)
		return nil, err
	}
	p, err := s.checkBasic(ctx, username, password, use)
	if errors.Is(err, ErrInvalidCredentials) {
		s.limiter.fail(username, clientIP)
		s.log.InfoContext(ctx, "login failed", "username", username, "client_ip", clientIP)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	s.limiter.succeed(username, clientIP)
	return p, nil
}

func (s *Service) checkBasic(ctx context.Context, username, password string, use Usage) (*Principal, error) {
	if username == "" || len(username) > 150 || len(password) > MaxPasswordLength {
		return nil, ErrInvalidCredentials
	}
	if strings.HasPrefix(password, TokenPrefix) {
		p, err := s.AuthenticateToken(ctx, password, use)
		switch {
		case err == nil && strings.EqualFold(p.Username, username):
			return p, nil
		case err == nil:
			return nil, ErrInvalidCredentials // someone else's token
		case !errors.Is(err, ErrInvalidCredentials):
			return nil, err
		}
		// Not a token after all: perhaps a password that looks like one.
	}
	u, err := s.store.userByName(ctx, username)
	if errors.Is(err, core.ErrNotFound) {
		if _, err := s.hasher.verify(ctx, "", password); err != nil {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	if u.Active && s.creds.hit(username, password, u.PasswordHash) {
		return s.principalFor(ctx, u, MethodPassword, "")
	}
	ok, err := s.hasher.verify(ctx, u.PasswordHash, password)
	if err != nil {
		return nil, err
	}
	if !ok || !u.Active {
		return nil, ErrInvalidCredentials
	}
	s.creds.remember(username, password, u.PasswordHash)
	return s.principalFor(ctx, u, MethodPassword, "")
}
