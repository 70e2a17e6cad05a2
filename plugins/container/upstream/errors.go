package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"unicode"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Sentinel errors, wrapped by *Error; test them with errors.Is.
var (
	// ErrInvalidConfig: a Config that cannot work (bad URL, PEM, …).
	ErrInvalidConfig = errors.New("invalid remote configuration")
	// ErrInvalidName: a repository name, tag or digest that is not valid.
	ErrInvalidName = errors.New("invalid name")
	// ErrUnreachable: the registry could not be reached (DNS, refused or
	// timed-out connection, no route).
	ErrUnreachable = errors.New("registry unreachable")
	// ErrTLS: the TLS handshake failed (unknown authority, wrong host, not
	// TLS at all, client certificate refused).
	ErrTLS = errors.New("TLS handshake failed")
	// ErrProxy: the configured proxy could not be reached or refused us.
	ErrProxy = errors.New("proxy failed")
	// ErrUnauthorized: the registry or its token service refused the
	// credentials, or wants credentials and none are configured.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: authenticated, but not allowed (403).
	ErrForbidden = errors.New("access denied")
	// ErrNotFound: no such repository, manifest or blob (404).
	ErrNotFound = errors.New("not found")
	// ErrRateLimited: the registry answered 429 until we gave up.
	ErrRateLimited = errors.New("rate limited by the registry")
	// ErrUnavailable: 5xx answers, timeouts or dropped connections until we
	// gave up.
	ErrUnavailable = errors.New("registry unavailable")
	// ErrNotRegistry: the server answers HTTP but not the registry API at
	// /v2/.
	ErrNotRegistry = errors.New("not a container registry")
	// ErrDigestMismatch: content does not hash to (or is not the size of)
	// what it was asked for by or announced as.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrRedirect: a redirect was refused (scheme, downgrade, SSRF).
	ErrRedirect = errors.New("redirect refused")
	// ErrProtocol: the registry's answer breaks the distribution API
	// (malformed JSON, oversized manifest, bad pagination link…).
	ErrProtocol = errors.New("unexpected registry response")
)

// Error is a failed request to a remote registry. It describes itself; its
// URL is redacted and its text never contains configured secrets.
type Error struct {
	// Op is what the Client was doing, e.g. "get manifest library/alpine:3".
	Op string
	// Method and URL are those of the request that failed (URL redacted);
	// empty when the failure happened before any request.
	Method, URL string
	// StatusCode is the HTTP status, 0 when there was no response.
	StatusCode int
	// Codes are the registry's error codes from the OCI error body, e.g.
	// MANIFEST_UNKNOWN.
	Codes []string
	// Message says what went wrong, in words.
	Message string
	// Kind is the sentinel (ErrNotFound, ErrTLS…), nil when none applies.
	Kind error
	// Err is the underlying error, if any.
	Err error

	temporary bool
	detail    string // Err's text, scrubbed; shown after Message
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("upstream: ")
	b.WriteString(e.Op)
	if e.Method != "" {
		fmt.Fprintf(&b, ": %s %s", e.Method, e.URL)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	if e.detail != "" && !strings.Contains(e.Message, e.detail) {
		b.WriteString(": ")
		b.WriteString(e.detail)
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As both the sentinel and the cause.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Temporary reports whether trying again later may succeed: rate limits,
// server errors, timeouts and dropped connections.
func (e *Error) Temporary() bool { return e.temporary }

// IsTemporary reports whether err is an *Error that is Temporary.
func IsTemporary(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Temporary()
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// ociErrors is the OCI distribution error envelope.
type ociErrors struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail"`
	} `json:"errors"`
}

// statusError builds the *Error of an unsuccessful response, reading (at
// most maxErrorBody of) its body for the registry's error codes. It does not
// close the body.
func (c *Client) statusError(op string, resp *http.Response) *Error {
	e := &Error{Op: op, StatusCode: resp.StatusCode}
	if resp.Request != nil {
		e.Method, e.URL = resp.Request.Method, redactURL(resp.Request.URL)
	}
	e.Kind, e.temporary = statusKind(resp.StatusCode)
	var parts []string
	var snippet string
	if resp.Body != nil && resp.Request != nil && resp.Request.Method != http.MethodHead {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		var env ociErrors
		if json.Unmarshal(body, &env) == nil {
			for _, d := range env.Errors {
				e.Codes = append(e.Codes, d.Code)
				p := d.Code
				if d.Message != "" {
					p += ": " + d.Message
				}
				parts = append(parts, p)
			}
		} else if isTextual(resp.Header.Get("Content-Type")) {
			snippet = oneLine(string(body), 200)
		}
	}
	if len(parts) == 0 && snippet != "" {
		parts = []string{snippet}
	}
	e.Message = c.scrub(statusMessage(resp.StatusCode, parts))
	return e
}

// statusMessage is e.g. "404 Not Found: MANIFEST_UNKNOWN: manifest unknown".
func statusMessage(code int, parts []string) string {
	msg := fmt.Sprintf("%d %s", code, http.StatusText(code))
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, "; ")
	}
	return msg
}

// statusKind maps an HTTP status to its sentinel and whether it is
// temporary.
func statusKind(code int) (error, bool) {
	switch {
	case code == http.StatusUnauthorized:
		return ErrUnauthorized, false
	case code == http.StatusForbidden:
		return ErrForbidden, false
	case code == http.StatusNotFound:
		return ErrNotFound, false
	case code == http.StatusProxyAuthRequired:
		return ErrProxy, false
	case code == http.StatusTooManyRequests:
		return ErrRateLimited, true
	case code == http.StatusRequestTimeout, code >= 500:
		return ErrUnavailable, true
	default:
		return ErrProtocol, false
	}
}

// fail turns any error of an operation into an *Error: an *Error is
// returned as it is; a go-containerregistry *transport.Error (a token
// service's refusal) keeps its status and codes; network errors are
// classified (DNS, refused, TLS, proxy…).
func (c *Client) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if own, ok := err.(*Error); ok {
		// From a step shared by operations (the /v2/ probe): say which
		// operation it failed.
		cp := *own
		cp.Op = op
		return &cp
	}
	var own *Error
	if errors.As(err, &own) {
		return err
	}
	e := &Error{Op: op, Err: err}
	var ue *url.Error
	if errors.As(err, &ue) {
		e.Method = strings.ToUpper(ue.Op)
		if u, perr := url.Parse(ue.URL); perr == nil {
			e.URL = redactURL(u)
		} else {
			e.URL = "(unparsable URL)"
		}
		err = ue.Err
	}
	var te *transport.Error
	switch {
	case errors.As(err, &te):
		if te.Request != nil {
			e.Method, e.URL = te.Request.Method, redactURL(te.Request.URL)
		}
		e.StatusCode = te.StatusCode
		e.Kind, e.temporary = statusKind(te.StatusCode)
		var parts []string
		for _, d := range te.Errors {
			e.Codes = append(e.Codes, string(d.Code))
			parts = append(parts, d.String())
		}
		e.Message = statusMessage(te.StatusCode, parts)
	case errors.Is(err, ErrRateLimited):
		// The limiter's shared Retry-After pause would outlast ctx.
		e.Kind, e.temporary = ErrRateLimited, true
		e.Message = "the registry asked us to wait past the deadline"
	case errors.Is(err, context.Canceled):
		e.Message = "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		e.Message = "deadline exceeded"
	default:
		e.Kind, e.Message, e.temporary = describeNetError(err)
	}
	e.Message = c.scrub(e.Message)
	if te == nil {
		e.detail = c.scrub(err.Error()) // a transport.Error is all in Message
	}
	return e
}

// describeNetError classifies an error that came instead of a response.
func describeNetError(err error) (kind error, msg string, temporary bool) {
	var (
		proxyStatus *proxyStatusError
		redirect    *redirectError
		token       *tokenError
		dns         *net.DNSError
		unknownCA   x509.UnknownAuthorityError
		wrongHost   x509.HostnameError
		invalidCert x509.CertificateInvalidError
		notTLS      tls.RecordHeaderError
		op          *net.OpError
	)
	isOp := errors.As(err, &op)
	switch {
	case errors.As(err, &redirect):
		return ErrRedirect, redirect.reason, false
	case errors.As(err, &token):
		return ErrUnauthorized, "cannot get a token from the registry's token service at " + token.realm, false
	case errors.As(err, &proxyStatus):
		return ErrProxy, fmt.Sprintf("the proxy refused to connect us to the registry (%s)", proxyStatus.status), false
	case isOp && op.Op == "proxyconnect":
		return ErrProxy, "cannot connect to the proxy", false
	case errors.As(err, &dns):
		return ErrUnreachable, fmt.Sprintf("cannot resolve host %q", dns.Name), dns.IsTemporary || dns.IsTimeout
	case errors.As(err, &unknownCA):
		return ErrTLS, "the registry's certificate is signed by an unknown authority (give the remote its CA certificate, or turn off TLS validation)", false
	case errors.As(err, &wrongHost):
		return ErrTLS, fmt.Sprintf("the registry's certificate is not valid for host %q", wrongHost.Host), false
	case errors.As(err, &invalidCert):
		return ErrTLS, "the registry's certificate is invalid (expired, not yet valid or not for servers)", false
	case errors.Is(err, http.ErrSchemeMismatch):
		return ErrTLS, "the server speaks plain HTTP, not TLS (use an http:// URL)", false
	case errors.As(err, &notTLS):
		return ErrTLS, "the server did not answer with TLS", false
	case isOp && op.Op == "remote error":
		// A TLS alert from the server: usually a missing or refused client
		// certificate.
		return ErrTLS, "the registry refused the TLS handshake (a client certificate may be required, or the one given is not accepted)", false
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrUnreachable, fmt.Sprintf("connection refused%s (is the registry running, is the port right?)", opAddr(op)), false
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ErrUnreachable, fmt.Sprintf("no route to the registry%s", opAddr(op)), false
	case isOp && op.Op == "dial" && op.Timeout():
		return ErrUnreachable, fmt.Sprintf("timed out connecting%s", opAddr(op)), false
	case isTimeout(err):
		return ErrUnavailable, "timed out waiting for the registry", true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, net.ErrClosed):
		return ErrUnavailable, "the connection to the registry was dropped", true
	default:
		return nil, "request failed", false
	}
}

func opAddr(op *net.OpError) string {
	if op == nil || op.Addr == nil {
		return ""
	}
	return " by " + op.Addr.String()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// proxyStatusError is a proxy's non-200 answer to CONNECT.
type proxyStatusError struct{ status string }

func (e *proxyStatusError) Error() string { return "proxy CONNECT: " + e.status }

// redirectError is a redirect that checkRedirect refused.
type redirectError struct{ reason string }

func (e *redirectError) Error() string { return e.reason }

// redactedParams are the query parameters shown in error URLs and logs;
// every other value (token, access_token, X-Amz-Signature, sig, Signature,
// X-Goog-Credential, …) is replaced by REDACTED.
var shownParams = map[string]bool{
	"scope": true, "service": true, "n": true, "last": true,
	"digest": true, "mount": true, "from": true,
}

// redactURL renders u without user info, fragment or secret query values.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	r.User = nil
	r.Fragment, r.RawFragment = "", ""
	if r.RawQuery != "" {
		q := r.Query()
		for k, vs := range q {
			if shownParams[k] {
				continue
			}
			for i := range vs {
				vs[i] = "REDACTED"
			}
		}
		r.RawQuery = q.Encode()
	}
	return r.String()
}

// scrub replaces the configured secrets in s. Secrets shorter than 4
// characters are left: replacing them would garble messages, and they give
// nothing away.
func (c *Client) scrub(s string) string {
	if c == nil {
		return s
	}
	for _, secret := range c.secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "REDACTED")
		}
	}
	return s
}

func isTextual(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "text/plain" || strings.HasSuffix(mt, "json"))
}

// oneLine collapses whitespace and shortens s to at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}
