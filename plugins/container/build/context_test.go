package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/core"
)

// entry is one tar entry for tests.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarFile(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link, Size: int64(len(e.body))}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if typ == tar.TypeXGlobalHeader {
			hdr = &tar.Header{Typeflag: typ, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "abc"}}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractContext(t *testing.T) {
	archive := tarFile(t,
		entry{typ: tar.TypeXGlobalHeader},
		entry{name: "./", typ: tar.TypeDir, mode: 0o755},
		entry{name: "app/", typ: tar.TypeDir, mode: 0o555},
		entry{name: "app/main.py", body: "print('hi')\n"},
		entry{name: "./bin/run.sh", body: "#!/bin/sh\n", mode: 0o4755}, // setuid dropped
		entry{name: "current", typ: tar.TypeSymlink, link: "app"},
		entry{name: "app/up", typ: tar.TypeSymlink, link: "../bin/run.sh"},
		entry{name: "dangling", typ: tar.TypeSymlink, link: "nowhere/yet"},
	)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(archive)
	zw.Close()
	for name, data := range map[string][]byte{"tar": archive, "tar.gz": gz.Bytes()} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := ExtractContext(bytes.NewReader(data), dir, ContextLimits{}); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "current", "main.py")); err != nil || string(b) != "print('hi')\n" {
				t.Errorf("current/main.py = %q, %v", b, err)
			}
			fi, err := os.Stat(filepath.Join(dir, "bin", "run.sh"))
			if err != nil || fi.Mode().Perm() != 0o755 || fi.Mode()&os.ModeSetuid != 0 {
				t.Errorf("run.sh mode = %v, %v; want 0755 without setuid", fi.Mode(), err)
			}
			if target, err := os.Readlink(filepath.Join(dir, "app", "up")); err != nil || target != "../bin/run.sh" {
				t.Errorf("app/up -> %q, %v", target, err)
			}
		})
	}
}

func TestExtractContextRefuses(t *testing.T) {
	big := strings.Repeat("x", 600)
	tests := []struct {
		name    string
		entries []entry
		limits  ContextLimits
		want    string
	}{
		{"absolute path", []entry{{name: "/etc/passwd", body: "x"}}, ContextLimits{}, "absolute"},
		{"dot-dot", []entry{{name: "a/../../x", body: "x"}}, ContextLimits{}, "'..'"},
		{"dot-dot only", []entry{{name: "..", typ: tar.TypeDir}}, ContextLimits{}, "'..'"},
		{"backslash", []entry{{name: `a\..\x`, body: "x"}}, ContextLimits{}, "backslash"},
		{"absolute symlink", []entry{{name: "l", typ: tar.TypeSymlink, link: "/etc"}}, ContextLimits{}, "absolute path"},
		{"escaping symlink", []entry{{name: "a/l", typ: tar.TypeSymlink, link: "../../etc"}}, ContextLimits{}, "leaves the context"},
		{"escape through another link", []entry{
			{name: "here", typ: tar.TypeSymlink, link: "."},
			{name: "l", typ: tar.TypeSymlink, link: "here/../etc"},
		}, ContextLimits{}, "through other links"},
		{"escape through a later link", []entry{
			{name: "l", typ: tar.TypeSymlink, link: "d/../x"},
			{name: "d", typ: tar.TypeSymlink, link: "."},
		}, ContextLimits{}, "through other links"},
		{"link loop", []entry{
			{name: "a", typ: tar.TypeSymlink, link: "b"},
			{name: "b", typ: tar.TypeSymlink, link: "a"},
		}, ContextLimits{}, "through other links"},
		{"write through a link", []entry{
			{name: "l", typ: tar.TypeSymlink, link: "."},
			{name: "l/../../x", body: "x"},
		}, ContextLimits{}, "'..'"},
		{"hard link", []entry{{name: "a", body: "x"}, {name: "b", typ: tar.TypeLink, link: "a"}}, ContextLimits{}, "hard links"},
		{"device", []entry{{name: "null", typ: tar.TypeChar}}, ContextLimits{}, "unsupported entry type"},
		{"fifo", []entry{{name: "p", typ: tar.TypeFifo}}, ContextLimits{}, "unsupported entry type"},
		{"duplicate", []entry{{name: "a", body: "1"}, {name: "./a", body: "2"}}, ContextLimits{}, "twice"},
		{"file over a link", []entry{{name: "l", typ: tar.TypeSymlink, link: "x"}, {name: "l", body: "2"}}, ContextLimits{}, "twice"},
		{"too large", []entry{{name: "a", body: big}, {name: "b", body: big}}, ContextLimits{MaxBytes: 1000, MaxEntries: 10}, "larger than 1000"},
		{"too many entries", []entry{{name: "a"}, {name: "b"}, {name: "c"}}, ContextLimits{MaxBytes: 1000, MaxEntries: 2}, "more than 2 entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "context")
			os.Mkdir(dir, 0o700)
			err := ExtractContext(bytes.NewReader(tarFile(t, tt.entries...)), dir, tt.limits)
			var v *core.ValidationError
			if !errors.As(err, &v) || !strings.Contains(strings.Join(v.Fields["context"], ";"), tt.want) {
				t.Fatalf("ExtractContext() = %v, want a context error with %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 1 {
				t.Errorf("something was written next to the context: %v", entries)
			}
		})
	}
	for name, data := range map[string][]byte{
		"empty":       nil,
		"not a tar":   []byte(strings.Repeat("hello world\n", 100)),
		"broken gzip": {0x1f, 0x8b, 0, 0},
	} {
		if err := ExtractContext(bytes.NewReader(data), t.TempDir(), ContextLimits{}); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s: ExtractContext() = %v, want core.ErrInvalid", name, err)
		}
	}
}
