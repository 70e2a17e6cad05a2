package upstream

import (
	"context"
	_ "crypto/sha256" // registers SHA-256 for go-digest
	_ "crypto/sha512" // registers SHA-512 for go-digest
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

// MaxManifestSize bounds the manifests Manifest reads (the distribution
// spec asks registries to accept at least 4 MiB).
const MaxManifestSize = 16 << 20

// manifestAccept lists the manifest types we take, indexes first so that
// multi-arch images come whole.
var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex),
	string(types.DockerManifestList),
	string(types.OCIManifestSchema1),
	string(types.DockerManifestSchema2),
	string(types.DockerManifestSchema1Signed),
	string(types.DockerManifestSchema1),
}, ", ")

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// reference is a parsed tag or digest.
type reference struct {
	repo   name.Repository
	ident  string        // what goes in the URL
	digest digest.Digest // set when fetching by digest
}

// parseReference validates a repository and a tag or digest.
func (c *Client) parseReference(repo, ref string) (reference, error) {
	r, err := c.repository(repo)
	if err != nil {
		return reference{}, err
	}
	if strings.Contains(ref, ":") {
		d := digest.Digest(ref)
		if err := storage.ValidateDigest(d); err != nil {
			return reference{}, fmt.Errorf("invalid digest %q: want sha256:<64 hex> or sha512:<128 hex>", oneLine(ref, 300))
		}
		return reference{repo: r, ident: ref, digest: d}, nil
	}
	if !tagRE.MatchString(ref) {
		return reference{}, fmt.Errorf("invalid tag %q", oneLine(ref, 300))
	}
	return reference{repo: r, ident: ref}, nil
}

// refOp names an operation on repo:tag or repo@digest.
func refOp(verb, repo, ref string) string {
	if strings.Contains(ref, ":") {
		return verb + " " + repo + "@" + ref
	}
	return verb + " " + repo + ":" + ref
}

// Manifest fetches a manifest by tag or digest and returns its bytes, media
// type (from Content-Type, or from the manifest itself when the registry
// says only application/json) and digest. Fetched by digest, the bytes are
// verified against it; fetched by tag, against the registry's
// Docker-Content-Digest if it sent one, and the digest returned is the
// SHA-256 of the bytes. A mismatch is ErrDigestMismatch. (Signed schema 1
// manifests are the exception: their digest is the registry's, which covers
// the manifest without its signatures.)
func (c *Client) Manifest(ctx context.Context, repo, ref string) (raw []byte, mediaType string, dgst digest.Digest, err error) {
	op := refOp("get manifest", repo, ref)
	r, err := c.parseReference(repo, ref)
	if err != nil {
		return nil, "", "", &Error{Op: op, Kind: ErrInvalidName, Message: err.Error()}
	}
	req, resp, err := c.manifestRequest(ctx, http.MethodGet, r)
	if err != nil {
		return nil, "", "", c.fail(op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", "", c.statusError(op, resp)
	}
	raw, err = io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, "", "", c.fail(op, bodyError(req, err))
	}
	if len(raw) > MaxManifestSize {
		return nil, "", "", &Error{Op: op, Method: req.Method, URL: redactURL(req.URL), StatusCode: resp.StatusCode,
			Kind: ErrProtocol, Message: fmt.Sprintf("manifest larger than %d MiB", MaxManifestSize>>20)}
	}
	mediaType = manifestMediaType(resp.Header.Get("Content-Type"), raw)
	dgst, why := manifestDigest(raw, mediaType, digest.Digest(resp.Header.Get("Docker-Content-Digest")), r.digest)
	if why != "" {
		return nil, "", "", &Error{Op: op, Method: req.Method, URL: redactURL(req.URL), StatusCode: resp.StatusCode,
			Kind: ErrDigestMismatch, Message: why}
	}
	return raw, mediaType, dgst, nil
}

// HeadManifest asks for a manifest's digest, media type and size without
// its body: the cheap check whether a tag moved. When the registry's HEAD
// answer lacks a usable Docker-Content-Digest, Content-Type or
// Content-Length, it falls back to Manifest.
func (c *Client) HeadManifest(ctx context.Context, repo, ref string) (dgst digest.Digest, mediaType string, size int64, err error) {
	op := refOp("head manifest", repo, ref)
	r, err := c.parseReference(repo, ref)
	if err != nil {
		return "", "", 0, &Error{Op: op, Kind: ErrInvalidName, Message: err.Error()}
	}
	req, resp, err := c.manifestRequest(ctx, http.MethodHead, r)
	if err != nil {
		return "", "", 0, c.fail(op, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", 0, c.statusError(op, resp)
	}
	d := digest.Digest(resp.Header.Get("Docker-Content-Digest"))
	mt, _, mtErr := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if storage.ValidateDigest(d) != nil || resp.ContentLength < 0 || mtErr != nil || genericType(mt) {
		raw, mediaType, dgst, err := c.Manifest(ctx, repo, ref)
		return dgst, mediaType, int64(len(raw)), err
	}
	if r.digest != "" && d != r.digest {
		return "", "", 0, &Error{Op: op, Method: req.Method, URL: redactURL(req.URL), StatusCode: resp.StatusCode,
			Kind: ErrDigestMismatch, Message: fmt.Sprintf("the registry answered for %s, not the requested %s", d, r.digest)}
	}
	return d, mt, resp.ContentLength, nil
}

// manifestRequest sends a GET or HEAD for a manifest.
func (c *Client) manifestRequest(ctx context.Context, method string, r reference) (*http.Request, *http.Response, error) {
	rt, err := c.transport(ctx, r.repo)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url("/v2/"+r.repo.RepositoryStr()+"/manifests/"+r.ident), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.httpClient(rt).Do(req)
	return req, resp, err
}

// manifestDigest checks raw against the requested digest (want) or the
// registry's announced one (header), and returns its digest, or why not.
func manifestDigest(raw []byte, mediaType string, header, want digest.Digest) (digest.Digest, string) {
	headerOK := header != "" && storage.ValidateDigest(header) == nil
	signed := mediaType == string(types.DockerManifestSchema1Signed)
	if want != "" {
		if got := want.Algorithm().FromBytes(raw); got != want && (!signed || header != want) {
			return "", fmt.Sprintf("the manifest hashes to %s, not the requested %s", got, want)
		}
		return want, ""
	}
	if signed && headerOK {
		return header, ""
	}
	if headerOK {
		if got := header.Algorithm().FromBytes(raw); got != header {
			return "", fmt.Sprintf("the registry announced digest %s, but the manifest hashes to %s", header, got)
		}
	}
	return digest.FromBytes(raw), ""
}

// genericType reports content types that do not name a manifest type.
func genericType(mt string) bool {
	switch mt {
	case "", "application/json", "text/plain", "application/octet-stream":
		return true
	}
	return false
}

// manifestMediaType is the Content-Type, unless generic: then the
// manifest's own mediaType field, or what its shape says.
func manifestMediaType(contentType string, raw []byte) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil && !genericType(mt) {
		return mt
	}
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Signatures    json.RawMessage `json:"signatures"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return mt
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.SchemaVersion == 1 && probe.Signatures != nil:
		return string(types.DockerManifestSchema1Signed)
	case probe.SchemaVersion == 1:
		return string(types.DockerManifestSchema1)
	case probe.Manifests != nil:
		return string(types.OCIImageIndex)
	case probe.SchemaVersion == 2:
		return string(types.OCIManifestSchema1)
	}
	return mt
}

// bodyError gives an error reading a response body its request, as
// net/http does for errors before the answer.
func bodyError(req *http.Request, err error) error {
	return &url.Error{Op: req.Method, URL: req.URL.String(), Err: err}
}
