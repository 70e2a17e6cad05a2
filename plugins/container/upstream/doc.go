// Package upstream is Berth's client for remote (upstream) container
// registries: the network half of syncing from a remote.
//
// A Client is built from a remote's settings (Config, usually from
// ConfigFromRemote) and offers the read operations a sync needs: Tags (with
// Link-header pagination), Manifest, HeadManifest, Blob (streamed, resumed
// after a dropped connection; VerifyingReader checks its digest) and Ping
// (the "test connection" check, which says what failed in words).
// UpstreamName maps a repository name to its name on the remote (Docker
// Hub's library/ prefix) and Filter selects tags with include/exclude globs.
// Repository names given to a Client are used as they are: map them with
// UpstreamName first.
//
// # Transport stack
//
// Every HTTP request a Client makes, whatever its kind (the /v2/ probe,
// token requests to the auth realm, tag pages, manifest GETs and HEADs, blob
// GETs and the redirects they follow, resumed blob reads), goes down one
// stack, each layer cloning the request before changing it:
//
//	auth: go-containerregistry's Basic or Bearer transport (tokens from the
//	      registry's challenge, refreshed on 401), only towards the
//	      registry host
//	→ user agent
//	→ retry/backoff: GET and HEAD only; 408, 429, 5xx, dropped connections
//	  and small bodies cut short; Retry-After honoured and shared by the
//	  host
//	→ rate limit: one token bucket per registry, shared by all goroutines
//	  of a Client and, with WithLimiters, by all clients of a worker; it
//	  also meters the re-sends net/http makes by itself on dead keep-alive
//	  connections
//	→ *http.Transport: proxy, TLS roots, client certificate
//
// The limiter sits under the retry layer, so each attempt waits for a
// token, and under the auth layer, so token requests count too.
// go-containerregistry provides authentication (transport.Exchange and
// transport.FromToken over this stack), name parsing and media types; its
// remote package, and with it its own retry layer, is not used: retries
// never double up and the limiter sees every attempt.
//
// # Errors
//
// Operations return *Error, which names the operation, the method and the
// URL (values of query parameters such as token, X-Amz-Signature or sig
// redacted, user info removed), the status and the registry's error codes,
// and wraps a sentinel (ErrUnauthorized, ErrNotFound, ErrTLS,
// ErrUnreachable, ErrRateLimited, …) for errors.Is. Configured passwords
// and keys never appear in error texts or logs.
//
// Redirects (blob GETs are usually sent to storage on another host) are
// followed under a policy of our own: http and https only, no downgrade
// from https, Authorization dropped whenever host or port changes, and no
// redirect from a public registry to a loopback, private or link-local
// address.
package upstream
