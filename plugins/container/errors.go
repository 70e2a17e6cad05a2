package container

import (
	"errors"
	"fmt"

	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
)

// kind is a sentinel error of the registry. Each kind unwraps to the core
// sentinel that describes it generically, so the REST API maps these errors
// without knowing the plugin (errors.Is(err, core.ErrNotFound) …), while
// the content app maps them to the OCI codes (see v2Error).
type kind struct {
	text string
	base error
}

func (k *kind) Error() string { return k.text }
func (k *kind) Unwrap() error { return k.base }

// Sentinel errors of the registry; test them with errors.Is.
var (
	ErrNameInvalid         = &kind{"invalid repository name", core.ErrInvalid}
	ErrNameUnknown         = &kind{"repository name not known to registry", core.ErrNotFound}
	ErrTagInvalid          = &kind{"invalid tag", core.ErrInvalid}
	ErrDigestInvalid       = &kind{"invalid digest", core.ErrInvalid}
	ErrBlobUnknown         = &kind{"blob unknown to registry", core.ErrNotFound}
	ErrManifestUnknown     = &kind{"manifest unknown", core.ErrNotFound}
	ErrManifestInvalid     = &kind{"manifest invalid", core.ErrInvalid}
	ErrManifestBlobUnknown = &kind{"manifest references a blob or manifest unknown to the repository", core.ErrInvalid}
	ErrManifestTooLarge    = &kind{"manifest too large", core.ErrInvalid}
	ErrUploadUnknown       = &kind{"blob upload unknown", core.ErrNotFound}
	ErrUploadInvalid       = &kind{"blob upload invalid", core.ErrInvalid}
	ErrRangeInvalid        = &kind{"invalid content range", core.ErrInvalid}
	ErrSizeInvalid         = &kind{"size does not match content", core.ErrInvalid}
	ErrPaginationInvalid   = &kind{"invalid pagination", core.ErrInvalid}
	// ErrDenied: the name may not be pushed (namespace rules, a distribution
	// that cannot take pushes).
	ErrDenied = &kind{"denied", core.ErrForbidden}
)

// regError is one occurrence of a kind with a message for the client and an
// optional detail (the OCI envelope's "detail").
type regError struct {
	kind   *kind
	msg    string
	detail any
}

func (e *regError) Error() string { return e.msg }
func (e *regError) Unwrap() error { return e.kind }

// errorf returns an error of kind k with a formatted message.
func errorf(k *kind, format string, args ...any) error {
	return &regError{kind: k, msg: fmt.Sprintf(format, args...)}
}

// withDetail returns an error of kind k carrying an OCI detail object.
func withDetail(k *kind, detail any, format string, args ...any) error {
	return &regError{kind: k, msg: fmt.Sprintf(format, args...), detail: detail}
}

// rangeError is ErrRangeInvalid with the session's current size, which the
// client needs (in the Range header) to resume.
type rangeError struct {
	err  *regError
	size int64
}

func (e *rangeError) Error() string { return e.err.Error() }
func (e *rangeError) Unwrap() error { return e.err }

func newRangeError(size int64, format string, args ...any) error {
	return &rangeError{err: &regError{kind: ErrRangeInvalid, msg: fmt.Sprintf(format, args...)}, size: size}
}

// v2Codes maps each kind to its code of the OCI distribution spec.
var v2Codes = []struct {
	kind *kind
	code errcode.Code
}{
	{ErrNameInvalid, errcode.NameInvalid},
	{ErrNameUnknown, errcode.NameUnknown},
	{ErrTagInvalid, errcode.TagInvalid},
	{ErrDigestInvalid, errcode.DigestInvalid},
	{ErrBlobUnknown, errcode.BlobUnknown},
	{ErrManifestUnknown, errcode.ManifestUnknown},
	{ErrManifestInvalid, errcode.ManifestInvalid},
	{ErrManifestBlobUnknown, errcode.ManifestBlobUnknown},
	{ErrManifestTooLarge, errcode.ManifestTooLarge},
	{ErrUploadUnknown, errcode.BlobUploadUnknown},
	{ErrUploadInvalid, errcode.BlobUploadInvalid},
	{ErrRangeInvalid, errcode.RangeInvalid},
	{ErrSizeInvalid, errcode.SizeInvalid},
	{ErrPaginationInvalid, errcode.PaginationNumberInvalid},
	{ErrDenied, errcode.Denied},
}

// v2Error turns an error of the services into the registered OCI code the
// central error handler writes. Errors it does not know (database down,
// internal faults) pass through for the handler's generic mapping.
func v2Error(err error) error {
	if err == nil {
		return nil
	}
	var ce *errcode.Error
	if errors.As(err, &ce) {
		return err
	}
	for _, m := range v2Codes {
		if !errors.Is(err, m.kind) {
			continue
		}
		msg := err.Error()
		var re *regError
		var detail any
		if errors.As(err, &re) {
			msg, detail = re.msg, re.detail
		}
		out := m.code.Errorf("%s", msg)
		if detail != nil {
			out = out.WithDetail(detail)
		}
		return out
	}
	switch {
	case errors.Is(err, core.ErrUnauthorized):
		return errcode.Unauthorized.Errorf("%s", err.Error())
	case errors.Is(err, core.ErrForbidden):
		return errcode.Denied.Errorf("%s", err.Error())
	}
	return err
}
