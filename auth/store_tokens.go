package auth

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
)

func (s *store) insertToken(ctx context.Context, t *Token) error {
	return core.Translate(s.q(ctx).Create(t).Error)
}

func (s *store) tokenByID(ctx context.Context, id string) (*Token, error) {
	var t Token
	if err := take(s.q(ctx), &t, "token", id, "id = ?", id); err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *store) tokenByHash(ctx context.Context, hash string) (*Token, error) {
	var t Token
	if err := take(s.q(ctx), &t, "token", "(hidden)", "token_hash = ?", hash); err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *store) listTokens(ctx context.Context, userID string, q core.ListQuery) ([]Token, int64, error) {
	return list[Token](ctx, s.db, q, tokenCols, "created_at DESC", func(g *gorm.DB) *gorm.DB {
		return g.Where("user_id = ?", userID)
	})
}

func (s *store) deleteToken(ctx context.Context, id string) error {
	res := s.q(ctx).Where("id = ?", id).Delete(&Token{})
	if res.Error != nil {
		return core.Translate(res.Error)
	}
	if res.RowsAffected == 0 {
		return core.NotFound("token", id)
	}
	return nil
}

func (s *store) deleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	res := s.q(ctx).Where("expires_at IS NOT NULL AND expires_at < ?", now).Delete(&Token{})
	return res.RowsAffected, core.Translate(res.Error)
}

func (s *store) touchToken(ctx context.Context, id string, now time.Time) error {
	return core.Translate(s.q(ctx).Model(&Token{}).Where("id = ?", id).Update("last_used_at", now).Error)
}
