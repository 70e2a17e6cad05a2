package container

import (
	"bytes"
	"encoding/json"
	"mime"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types the registry knows.
const (
	MediaTypeOCIManifest    = ocispec.MediaTypeImageManifest
	MediaTypeOCIIndex       = ocispec.MediaTypeImageIndex
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"

	mediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mediaTypeDockerConfig        = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerForeignLayer  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// MaxManifestSize is the largest manifest the registry accepts (4 MiB, as
// the distribution spec recommends registries accept at least).
const MaxManifestSize = 4 << 20

// isIndexType reports whether mt is a manifest list / image index.
func isIndexType(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList }

// isManifestType reports whether the registry stores manifests of type mt.
func isManifestType(mt string) bool {
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

// family is "oci" or "docker" for the manifest types of that format.
func family(mt string) string {
	switch {
	case strings.HasPrefix(mt, "application/vnd.oci.image."):
		return "oci"
	case strings.HasPrefix(mt, "application/vnd.docker.distribution.manifest."):
		return "docker"
	}
	return ""
}

// descriptor is an OCI content descriptor as manifests carry them.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Platform     *ocispec.Platform `json:"platform,omitempty"`
}

// manifest is what the registry reads from a pushed manifest. The bytes are
// stored as they came; this is only an index into them.
type manifest struct {
	MediaType     string
	SchemaVersion int
	ArtifactType  string
	Config        *descriptor
	Layers        []descriptor
	Manifests     []descriptor
	Subject       *descriptor
	Annotations   map[string]string
	Size          int64
}

// isIndex reports whether m lists other manifests.
func (m *manifest) isIndex() bool { return isIndexType(m.MediaType) }

// effectiveArtifactType is the artifactType the referrers API shows: the
// manifest's own, else (for image manifests) its config's media type.
func (m *manifest) effectiveArtifactType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if !m.isIndex() && m.Config != nil {
		return m.Config.MediaType
	}
	return ""
}

// isForeign reports whether a layer may be missing from the registry: a
// non-distributable (foreign) layer that says where else to fetch it.
func isForeign(d descriptor) bool {
	if len(d.URLs) == 0 {
		return false
	}
	return d.MediaType == mediaTypeDockerForeignLayer ||
		strings.HasPrefix(d.MediaType, "application/vnd.oci.image.layer.nondistributable.")
}

// parseManifest validates a pushed manifest. contentType is the request's
// Content-Type; the media type is the manifest's own mediaType field when it
// has one (they must agree), else the Content-Type, else guessed from the
// fields (OCI manifests may omit mediaType).
func parseManifest(contentType string, body []byte) (*manifest, error) {
	var raw struct {
		SchemaVersion *int              `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		ArtifactType  string            `json:"artifactType"`
		Config        *descriptor       `json:"config"`
		Layers        []descriptor      `json:"layers"`
		Manifests     []descriptor      `json:"manifests"`
		Subject       *descriptor       `json:"subject"`
		Annotations   map[string]string `json:"annotations"`
		FSLayers      json.RawMessage   `json:"fsLayers"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, errorf(ErrManifestInvalid, "manifest is not a valid JSON object: %v", err)
	}
	if dec.More() {
		return nil, errorf(ErrManifestInvalid, "manifest has data after its JSON object")
	}
	ct := ""
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err == nil {
			ct = mt
		}
	}
	mt := raw.MediaType
	switch {
	case mt != "" && ct != "" && ct != mt && isManifestType(ct):
		return nil, errorf(ErrManifestInvalid, "Content-Type %q differs from the manifest's mediaType %q", ct, mt)
	case mt == "" && isManifestType(ct):
		mt = ct
	case mt == "" && raw.Manifests != nil:
		mt = MediaTypeOCIIndex
	case mt == "" && raw.Config != nil:
		mt = MediaTypeOCIManifest
	}
	if raw.SchemaVersion != nil && *raw.SchemaVersion == 1 || raw.FSLayers != nil || mt == mediaTypeDockerSchema1 || mt == mediaTypeDockerSchema1Signed {
		return nil, errorf(ErrManifestInvalid, "Docker schema 1 manifests are not supported; push schema 2 or OCI")
	}
	if !isManifestType(mt) {
		return nil, errorf(ErrManifestInvalid, "unsupported manifest media type %q", mt)
	}
	if raw.SchemaVersion == nil || *raw.SchemaVersion != 2 {
		return nil, errorf(ErrManifestInvalid, "schemaVersion must be 2")
	}
	m := &manifest{
		MediaType: mt, SchemaVersion: 2, ArtifactType: raw.ArtifactType, Config: raw.Config,
		Layers: raw.Layers, Manifests: raw.Manifests, Subject: raw.Subject, Annotations: raw.Annotations,
		Size: int64(len(body)),
	}
	if m.isIndex() {
		for i, d := range m.Manifests {
			if err := checkDescriptor(d, "manifests", i); err != nil {
				return nil, err
			}
		}
	} else {
		if m.Config == nil {
			return nil, errorf(ErrManifestInvalid, "an image manifest needs a config descriptor")
		}
		if err := checkDescriptor(*m.Config, "config", -1); err != nil {
			return nil, err
		}
		for i, d := range m.Layers {
			if err := checkDescriptor(d, "layers", i); err != nil {
				return nil, err
			}
		}
	}
	if m.Subject != nil {
		if err := checkDescriptor(*m.Subject, "subject", -1); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func checkDescriptor(d descriptor, field string, i int) error {
	where := field
	if i >= 0 {
		where = field + "[" + strconv.Itoa(i) + "]"
	}
	if d.MediaType == "" {
		return errorf(ErrManifestInvalid, "%s: mediaType is required", where)
	}
	if _, err := ParseDigest(d.Digest); err != nil {
		return withDetail(ErrManifestInvalid, map[string]string{"digest": d.Digest}, "%s: invalid digest %q", where, truncate(d.Digest, 200))
	}
	if d.Size < 0 {
		return errorf(ErrManifestInvalid, "%s: size must not be negative", where)
	}
	return nil
}

// imageConfig is what the registry reads from an image's config blob.
type imageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
	Config       struct {
		Labels map[string]string `json:"Labels"`
	} `json:"config"`
}

// isImageConfigType reports whether mt is a config the registry inspects.
func isImageConfigType(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == mediaTypeDockerConfig
}

// digestOf computes the digest of a manifest with the algorithm of want
// (sha256 when want is empty).
func digestOf(body []byte, want digest.Digest) digest.Digest {
	alg := digest.SHA256
	if want != "" {
		alg = want.Algorithm()
	}
	return alg.FromBytes(body)
}
