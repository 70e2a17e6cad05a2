package container

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
)

func TestParsePath(t *testing.T) {
	cases := []struct {
		path string
		want route
		ok   bool
	}{
		{"", route{kind: routeBase}, true},
		{"_catalog", route{kind: routeCatalog}, true},
		{"a/tags/list", route{kind: routeTags, name: "a"}, true},
		{"a/b/c/tags/list", route{kind: routeTags, name: "a/b/c"}, true},
		{"a/manifests/latest", route{kind: routeManifest, name: "a", arg: "latest"}, true},
		{"a/manifests/sha256:abc", route{kind: routeManifest, name: "a", arg: "sha256:abc"}, true},
		{"ns/blobs/blobs/sha256:abc", route{kind: routeBlob, name: "ns/blobs", arg: "sha256:abc"}, true},
		{"a/blobs/uploads/", route{kind: routeUploads, name: "a"}, true},
		{"a/blobs/uploads", route{kind: routeUploads, name: "a"}, true},
		{"a/blobs/uploads/123-abc", route{kind: routeUpload, name: "a", arg: "123-abc"}, true},
		{"x/blobs/blobs/uploads/id", route{kind: routeUpload, name: "x/blobs", arg: "id"}, true},
		{"a/manifests/x/referrers/sha256:1", route{kind: routeReferrers, name: "a/manifests/x", arg: "sha256:1"}, true},
		{"a/manifests/", route{}, false},
		{"a", route{}, false},
		{"a/unknown/x", route{}, false},
		{"tags/list", route{}, false},
	}
	for _, c := range cases {
		got, ok := parsePath(c.path)
		if ok != c.ok || got != c.want {
			t.Errorf("parsePath(%q) = %+v, %v; want %+v, %v", c.path, got, ok, c.want, c.ok)
		}
	}
}

func TestValidation(t *testing.T) {
	for _, n := range []string{"a", "my_ee", "ns/img", "a.b/c-d/e__f", "a--b", "0/1", strings.Repeat("a", 255)} {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "A", "../x", "a/../b", "a//b", "/a", "a/", "-a", "a_", "a___b", "a:b", strings.Repeat("a", 256)} {
		if err := ValidateName(n); !errors.Is(err, ErrNameInvalid) || !errors.Is(err, core.ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
	}
	for _, tag := range []string{"latest", "v1.0", "_x", "A-Z_0.9", strings.Repeat("t", 128)} {
		if err := ValidateTag(tag); err != nil {
			t.Errorf("ValidateTag(%q) = %v", tag, err)
		}
	}
	for _, tag := range []string{"", ".x", "-x", "a/b", "a:b", strings.Repeat("t", 129)} {
		if err := ValidateTag(tag); !errors.Is(err, ErrTagInvalid) {
			t.Errorf("ValidateTag(%q) = %v", tag, err)
		}
	}
	if _, err := ParseDigest("sha384:" + strings.Repeat("a", 96)); !errors.Is(err, ErrDigestInvalid) {
		t.Errorf("sha384 accepted: %v", err)
	}
}

func TestAcceptable(t *testing.T) {
	cases := []struct {
		accept []string
		mt     string
		want   bool
	}{
		{nil, MediaTypeOCIManifest, true},
		{[]string{"*/*"}, MediaTypeDockerManifest, true},
		{[]string{MediaTypeDockerManifest, MediaTypeDockerList}, MediaTypeOCIManifest, false},
		{[]string{MediaTypeDockerManifest + ";q=0.5," + MediaTypeOCIIndex}, MediaTypeOCIManifest, true},
		{[]string{MediaTypeOCIManifest}, MediaTypeDockerList, false},
		{[]string{MediaTypeDockerManifest}, MediaTypeDockerList, true},
		{[]string{"application/json"}, MediaTypeOCIIndex, true},
		{[]string{"application/vnd.docker.distribution.manifest.v1+prettyjws"}, MediaTypeOCIManifest, false},
	}
	for _, c := range cases {
		if got := acceptable(c.accept, c.mt); got != c.want {
			t.Errorf("acceptable(%q, %s) = %v", c.accept, c.mt, got)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	cases := []struct {
		in         string
		start, end int64
		nilRange   bool
		err        bool
	}{
		{in: "", nilRange: true},
		{in: "0-99", start: 0, end: 99},
		{in: "bytes 100-199/1000", start: 100, end: 199},
		{in: "bytes=5-5", start: 5, end: 5},
		{in: "9-3", err: true},
		{in: "x-y", err: true},
		{in: "-5", err: true},
	}
	for _, c := range cases {
		r, err := parseContentRange(c.in)
		switch {
		case c.err:
			if !errors.Is(err, ErrRangeInvalid) {
				t.Errorf("%q: err %v", c.in, err)
			}
		case c.nilRange:
			if r != nil || err != nil {
				t.Errorf("%q: %v %v", c.in, r, err)
			}
		case err != nil || r.start != c.start || r.end != c.end:
			t.Errorf("%q: %+v %v", c.in, r, err)
		}
	}
	if rangeHeader(0) != "0-0" || rangeHeader(10) != "0-9" {
		t.Error("rangeHeader")
	}
}

func TestParseManifest(t *testing.T) {
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2}`
	cases := []struct {
		name, ct, body string
		mt             string
		err            bool
	}{
		{"oci without mediaType", "", `{"schemaVersion":2,"config":` + cfg + `,"layers":[]}`, MediaTypeOCIManifest, false},
		{"index without mediaType", "", `{"schemaVersion":2,"manifests":[]}`, MediaTypeOCIIndex, false},
		{"content type decides", MediaTypeDockerManifest + "; charset=utf-8", `{"schemaVersion":2,"config":` + cfg + `}`, MediaTypeDockerManifest, false},
		{"disagreeing types", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + cfg + `}`, "", true},
		{"schema version 3", "", `{"schemaVersion":3,"config":` + cfg + `}`, "", true},
		{"trailing data", "", `{"schemaVersion":2,"config":` + cfg + `} {}`, "", true},
		{"negative size", "", `{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:` + strings.Repeat("a", 64) + `","size":-1}}`, "", true},
		{"unknown type", "", `{"schemaVersion":2,"mediaType":"application/vnd.example"}`, "", true},
	}
	for _, c := range cases {
		m, err := parseManifest(c.ct, []byte(c.body))
		if c.err {
			if !errors.Is(err, ErrManifestInvalid) {
				t.Errorf("%s: err %v", c.name, err)
			}
			continue
		}
		if err != nil || m.MediaType != c.mt {
			t.Errorf("%s: %+v %v", c.name, m, err)
		}
	}
}

func TestLRU(t *testing.T) {
	c := newLRU[string, int](3, 10, 0)
	c.put("a", 1, 1)
	c.put("b", 2, 1)
	c.put("c", 3, 1)
	c.get("a")
	c.put("d", 4, 1) // evicts b, the least recently used
	if _, ok := c.get("b"); ok {
		t.Error("b not evicted")
	}
	c.put("big", 5, 9) // evicts by cost
	if c.len() > 2 {
		t.Errorf("cost bound: %d entries", c.len())
	}
	c.put("huge", 6, 11) // larger than the whole budget: not cached
	if _, ok := c.get("huge"); ok {
		t.Error("huge cached")
	}
	ttl := newLRU[string, int](10, 0, 10*time.Millisecond)
	ttl.put("x", 1, 0)
	time.Sleep(20 * time.Millisecond)
	if _, ok := ttl.get("x"); ok {
		t.Error("expired entry returned")
	}
	off := newLRU[string, int](0, 0, 0)
	off.put("x", 1, 0)
	if _, ok := off.get("x"); ok {
		t.Error("disabled cache returned an entry")
	}
}

func TestKeyedLocks(t *testing.T) {
	k := newKeyedLocks()
	unlock, err := k.lock(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "s"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock: %v", err)
	}
	other, err := k.lock(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	other()
	unlock()
	again, err := k.lock(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	again()
	if len(k.locks) != 0 {
		t.Errorf("%d locks left", len(k.locks))
	}
}

func TestV2Error(t *testing.T) {
	var ce *errcode.Error
	if err := v2Error(errorf(ErrBlobUnknown, "gone")); !errors.As(err, &ce) || ce.Code != errcode.BlobUnknown || ce.Message != "gone" {
		t.Fatalf("blob unknown: %v", err)
	}
	if err := v2Error(withDetail(ErrManifestBlobUnknown, map[string]string{"digest": "d"}, "m")); !errors.As(err, &ce) || ce.Detail == nil {
		t.Fatalf("detail lost: %v", err)
	}
	if err := v2Error(core.ErrForbidden); !errors.As(err, &ce) || ce.Code != errcode.Denied {
		t.Fatalf("forbidden: %v", err)
	}
	plain := errors.New("boom")
	if v2Error(plain) != plain {
		t.Fatal("unknown errors must pass through")
	}
}
