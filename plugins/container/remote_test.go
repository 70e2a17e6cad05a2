package container_test

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestRemoteClient pushes and pulls with go-containerregistry's remote
// package, as crane does: random images and an index, byte-identical
// digests, tags listing, and a copy between repositories (which mounts).
func TestRemoteClient(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		host := strings.TrimPrefix(e.srv.URL, "http://")
		ref := func(s string) name.Reference {
			r, err := name.ParseReference(host+"/"+s, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		opts := []remote.Option{remote.WithContext(ctx)}

		img, err := random.Image(64<<10, 3)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := img.Digest()
		if err := remote.Write(ref("crane/random:v1"), img, opts...); err != nil {
			t.Fatalf("push image: %v", err)
		}
		got, err := remote.Image(ref("crane/random:v1"), opts...)
		if err != nil {
			t.Fatalf("pull image: %v", err)
		}
		if d, _ := got.Digest(); d != want {
			t.Fatalf("pulled digest %s, pushed %s", d, want)
		}
		layers, err := got.Layers()
		if err != nil || len(layers) != 3 {
			t.Fatalf("layers: %d, %v", len(layers), err)
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			// Reading through verifies the content against its digest.
			if _, err := drain(rc); err != nil {
				t.Fatalf("layer: %v", err)
			}
		}

		idx, err := random.Index(4096, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		wantIdx, _ := idx.Digest()
		if err := remote.WriteIndex(ref("crane/index:multi"), idx, opts...); err != nil {
			t.Fatalf("push index: %v", err)
		}
		gotIdx, err := remote.Index(ref("crane/index:multi"), opts...)
		if err != nil {
			t.Fatalf("pull index: %v", err)
		}
		if d, _ := gotIdx.Digest(); d != wantIdx {
			t.Fatalf("pulled index digest %s, pushed %s", d, wantIdx)
		}
		im, _ := gotIdx.IndexManifest()
		if len(im.Manifests) != 3 {
			t.Fatalf("index has %d manifests", len(im.Manifests))
		}
		for _, desc := range im.Manifests {
			child, err := gotIdx.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := child.Digest(); d != desc.Digest {
				t.Fatalf("child %s pulled as %s", desc.Digest, d)
			}
		}
		d, err := remote.Head(ref("crane/index:multi"), opts...)
		if err != nil || d.Digest != wantIdx || d.MediaType != types.OCIImageIndex {
			t.Fatalf("head index: %+v, %v", d, err)
		}

		// Copy to another repository: go-containerregistry mounts the
		// blobs from the source.
		if err := remote.Write(ref("other/copy:v1"), got, opts...); err != nil {
			t.Fatalf("copy: %v", err)
		}
		if d, err := remote.Head(ref("other/copy:v1"), opts...); err != nil || d.Digest != want {
			t.Fatalf("copied head: %+v, %v", d, err)
		}

		// More tags and the listing.
		for _, tag := range []string{"v2", "latest", "a-first"} {
			if err := remote.Tag(ref("crane/random:v1").Context().Tag(tag), got, opts...); err != nil {
				t.Fatal(err)
			}
		}
		tags, err := remote.List(ref("crane/random:v1").Context(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		if w := []string{"a-first", "latest", "v1", "v2"}; !slices.Equal(tags, w) {
			t.Fatalf("tags = %v, want %v", tags, w)
		}
	})
}

func drain(rc interface {
	Read([]byte) (int, error)
	Close() error
}) (int64, error) {
	defer rc.Close()
	return io.Copy(io.Discard, rc)
}
