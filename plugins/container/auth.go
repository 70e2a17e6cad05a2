package container

import (
	"context"

	"github.com/labstack/echo/v4"
)

// Action is what a request does with a repository (image name).
type Action string

// The actions of the content app, named as in Docker token scopes
// (repository:<name>:pull,push,delete and registry:catalog:*).
const (
	ActionPull    Action = "pull"
	ActionPush    Action = "push"
	ActionDelete  Action = "delete"
	ActionCatalog Action = "catalog" // GET /v2/_catalog; Repository is ""
)

// Access is what one /v2/ request needs. The zero Access is the API version
// check (GET /v2/), which only asks whether the client may come in at all.
type Access struct {
	// Repository is the image name; "" for the version check and the catalog.
	Repository string
	// Actions are all needed (push also reads: HEAD of blobs is a pull).
	Actions []Action
	// UploadOwner is the user ID recorded on the upload session the request
	// continues, "" otherwise: an authenticator may accept that user's
	// expired registry token so that a long upload can finish.
	UploadOwner string
}

// Identity is who a request was authorized for. The zero Identity is
// anonymous.
type Identity struct {
	UserID   string
	Username string
}

// name is what the registry records as creator (of versions, namespaces).
func (i Identity) name() string { return i.Username }

// Authorizer authenticates a /v2/ request and decides whether it may have
// need. It returns the identity to record, or an error: an *errcode.Error is
// written as it is (so an implementation sets its own WWW-Authenticate
// challenge and codes); an error matching core.ErrUnauthorized answers 401
// UNAUTHORIZED, core.ErrForbidden 403 DENIED.
//
// The auth service plugs in with a few lines of glue mapping Access to its
// token scope (auth.Service.AuthorizeRegistry) and its principal to Identity.
type Authorizer interface {
	Authorize(c echo.Context, need Access) (Identity, error)
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(c echo.Context, need Access) (Identity, error)

// Authorize calls f.
func (f AuthorizerFunc) Authorize(c echo.Context, need Access) (Identity, error) { return f(c, need) }

// AllowAll lets everybody do everything, anonymously. It is the default
// until an Authorizer is configured.
type AllowAll struct{}

// Authorize allows.
func (AllowAll) Authorize(echo.Context, Access) (Identity, error) { return Identity{}, nil }

// NamespaceHook is told about each namespace a push or CreateImage created,
// after the transaction that created it committed (the auth service makes
// the creator the namespace's owner). Its error is logged: the namespace
// stays.
type NamespaceHook func(ctx context.Context, namespace string, creator Identity) error
