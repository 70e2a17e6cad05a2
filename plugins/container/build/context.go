package build

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/berth-dev/berth/core"
)

// ContextLimits bound a build context archive.
type ContextLimits struct {
	// MaxBytes bounds the total size of the regular files.
	MaxBytes int64
	// MaxEntries bounds the number of entries (files, directories, links).
	MaxEntries int
}

// DefaultContextLimits are the limits a [Runner] uses unless told otherwise.
var DefaultContextLimits = ContextLimits{MaxBytes: 256 << 20, MaxEntries: 10000}

// ExtractContext extracts a build context, a tar archive (gzip-compressed or
// not), into dir, which must exist. Only regular files, directories and
// symbolic links are accepted; paths must be relative and stay inside the
// context (no "..", no absolute paths), and so must symbolic links; hard
// links, devices and FIFOs are refused, and so is an entry that names an
// existing file again. Permissions keep their rwx bits (set-user-ID,
// set-group-ID and sticky bits are dropped); owners are not restored (COPY
// makes files root's unless told otherwise). PAX global headers (as written
// by git archive) are skipped.
//
// Extraction goes through an os.Root, so even a sequence of entries that
// tried to write through a symbolic link could not leave dir. A bad archive
// returns a *core.ValidationError under "context" naming the entry.
func ExtractContext(r io.Reader, dir string, limits ContextLimits) error {
	if limits.MaxBytes <= 0 {
		limits.MaxBytes = DefaultContextLimits.MaxBytes
	}
	if limits.MaxEntries <= 0 {
		limits.MaxEntries = DefaultContextLimits.MaxEntries
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	defer root.Close()

	br := bufio.NewReader(r)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return core.Invalid("context", "not a valid gzip stream: %v", err)
		}
		defer zr.Close()
		in = zr
	}
	tr := tar.NewReader(in)
	var size int64
	var links []string
	for entries := 0; ; entries++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if entries == 0 {
				return core.Invalid("context", "the archive is empty or not a tar archive")
			}
			// Links are checked again once all exist: a link that stayed
			// inside when it was written may leave through a later one.
			for _, l := range links {
				if !staysInside(root, l) {
					return core.Invalid("context", "%q: symbolic link leaves the context through other links", l)
				}
			}
			return nil
		}
		if err != nil {
			return core.Invalid("context", "not a valid tar archive: %v", err)
		}
		if entries >= limits.MaxEntries {
			return core.Invalid("context", "more than %d entries", limits.MaxEntries)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := contextPath(hdr.Name)
		if err != nil {
			return core.Invalid("context", "%q: %v", truncate(hdr.Name, 200), err)
		}
		if name == "." {
			continue // the context directory itself
		}
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA { //nolint:staticcheck // old archives still use TypeRegA
			if size += hdr.Size; size > limits.MaxBytes {
				return core.Invalid("context", "larger than %d bytes", limits.MaxBytes)
			}
		}
		if hdr.Typeflag == tar.TypeSymlink {
			links = append(links, name)
		}
		if err := extractEntry(root, tr, hdr, name); err != nil {
			var v *core.ValidationError
			if errors.As(err, &v) {
				return err
			}
			return core.Invalid("context", "%q: %v", truncate(hdr.Name, 200), err)
		}
	}
}

// contextPath cleans an entry name and checks that it stays inside the
// context.
func contextPath(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty name")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("absolute paths are not allowed")
	case strings.ContainsRune(name, '\\'):
		return "", errors.New("backslashes are not allowed in paths")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", errors.New("paths may not contain '..'")
		}
	}
	return path.Clean(name), nil
}

// extractEntry writes one entry under root.
func extractEntry(root *os.Root, tr *tar.Reader, hdr *tar.Header, name string) error {
	perm := fs.FileMode(hdr.Mode) & fs.ModePerm
	if fi, err := root.Lstat(name); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
		return errors.New("the archive names this path twice")
	}
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(name, perm|0o700); err != nil {
			return err
		}
		return root.Chmod(name, perm|0o700)
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // see above
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return root.Chmod(name, perm|0o600)
	case tar.TypeSymlink:
		target := hdr.Linkname
		switch {
		case target == "":
			return errors.New("symbolic link without a target")
		case path.IsAbs(target):
			return fmt.Errorf("symbolic link to the absolute path %q: links must stay inside the context", target)
		}
		if resolved := path.Join(path.Dir(name), target); resolved == ".." || strings.HasPrefix(resolved, "../") {
			return fmt.Errorf("symbolic link to %q leaves the context", target)
		}
		return root.Symlink(target, name)
	case tar.TypeLink:
		return errors.New("hard links are not supported")
	default:
		return fmt.Errorf("unsupported entry type %q: only files, directories and symbolic links", hdr.Typeflag)
	}
}

// maxLinkHops bounds the symbolic links followed while resolving one path,
// as the kernel's own limit does.
const maxLinkHops = 40

// staysInside reports whether resolving the path name inside root, following
// the symbolic links extracted so far the way the kernel would (".." of the
// root leaves it), stays inside root.
func staysInside(root *os.Root, name string) bool {
	var cur []string
	todo := strings.Split(name, "/")
	for hops := 0; len(todo) > 0; {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return false
			}
			cur = cur[:len(cur)-1]
			continue
		}
		p := path.Join(append(cur, part)...)
		fi, err := root.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, part)
			continue
		}
		if hops++; hops > maxLinkHops {
			return false
		}
		target, err := root.Readlink(p)
		if err != nil || path.IsAbs(target) {
			return false
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return true
}
