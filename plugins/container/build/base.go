package build

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berth-dev/berth/core"
)

// BaseUser returns the user a base image runs as (the User of its config;
// "" means root), for [Spec.Render] to restore after installing packages.
// It reads the manifest and config only, for the worker's platform when the
// base is an index, with creds when they are not nil. Registries reached
// over plain HTTP must be insecure ([WithInsecureRegistries]); TLS is always
// verified here.
//
// Errors are *BuildError in PhasePull, matching ErrBaseNotFound or
// ErrUnauthorized when the registry says so; an invalid reference is a
// *core.ValidationError under "base".
func (r *Runner) BaseUser(ctx context.Context, base string, creds *Credentials) (string, error) {
	ref, err := parseBase(base)
	if err != nil {
		return "", core.Invalid("base", "%v", err)
	}
	if r.insecure[ref.Context().RegistryStr()] {
		if ref, err = name.ParseReference(base, name.Insecure); err != nil {
			return "", core.Invalid("base", "%v", err)
		}
	}
	next := r.transport
	if next == nil {
		next = http.DefaultTransport
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(httpGuard{next: next, insecure: r.insecure}),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
	}
	if creds != nil {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: creds.Username, Password: creds.Password}))
	}
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return "", baseError(refString(ref), err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", baseError(refString(ref), err)
	}
	return cfg.Config.User, nil
}

// baseError classifies an error reading a base image.
func baseError(ref string, err error) error {
	sentinel := ErrBuildFailed
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch {
		case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden:
			sentinel = ErrUnauthorized
		case terr.StatusCode == http.StatusNotFound:
			sentinel = ErrBaseNotFound
		}
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
				sentinel = ErrBaseNotFound
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				sentinel = ErrUnauthorized
			}
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &BuildError{Phase: PhasePull, Ref: ref, Err: err}
	}
	return &BuildError{Phase: PhasePull, Ref: ref, Reason: err.Error(), Err: sentinel}
}

// httpGuard refuses plain-HTTP requests to registries that are not
// insecure: go-containerregistry falls back to HTTP on its own for private
// and loopback addresses, which buildah would not do.
type httpGuard struct {
	next     http.RoundTripper
	insecure map[string]bool
}

func (g httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.insecure[req.URL.Host] {
		return nil, fmt.Errorf("refusing plain HTTP to %s: not an insecure registry", req.URL.Host)
	}
	return g.next.RoundTrip(req)
}
