package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/spf13/cobra"
)

func newPushCmd() *cobra.Command {
	var o clientOptions
	var tag string
	cmd := &cobra.Command{
		Use:   "push IMAGE-TARBALL|OCI-LAYOUT NAME:TAG",
		Short: "Push a 'docker save' tarball or an OCI layout to the registry (no daemon needed)",
		Long: `push uploads an image from a local file to the server's registry as NAME:TAG:
a tarball made by 'docker save' or 'podman save' (use --image to pick one
image of a tarball holding several), or an OCI image layout directory (its
only image, or the one --image names by its ref.name annotation; an index is
pushed whole). It logs in with a registry token of the stored login; the
repository is created by the push.`,
		Example: `  docker save my-app:1.0 -o my-app.tar && berth push my-app.tar team/my-app:1.0
  skopeo copy docker://alpine oci:alpine-layout:latest && berth push alpine-layout team/alpine:latest`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var reg struct {
				Registry string `json:"registry"`
			}
			if _, err := c.call(ctx, http.MethodGet, "/api/v1/registry/", nil, &reg); err != nil {
				return err
			}
			target := args[1]
			if !strings.Contains(lastSegment(target), ":") && !strings.Contains(target, "@") {
				target += ":latest"
			}
			opts := []name.Option{name.StrictValidation}
			if u, err := url.Parse(c.cfg.Server); err == nil && u.Scheme == "http" {
				opts = append(opts, name.Insecure)
			}
			ref, err := name.NewTag(reg.Registry+"/"+target, opts...)
			if err != nil {
				return usageError{fmt.Errorf("%q is not NAME:TAG: %w", args[1], err)}
			}
			var tok struct {
				Username string `json:"username"`
				Token    string `json:"token"`
			}
			if _, err := c.call(ctx, http.MethodPost, "/api/v1/registry/token/", map[string]any{}, &tok); err != nil {
				return fmt.Errorf("get a registry token: %w", err)
			}
			ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: tok.Username, Password: tok.Token})}
			digest, err := pushLocal(args[0], tag, ref, ropts)
			if err != nil {
				return err
			}
			out := map[string]string{"image": ref.String(), "digest": digest.String(), "pull": ref.Context().String() + "@" + digest.String()}
			if c.json {
				return c.printJSON(out)
			}
			fmt.Fprintf(c.out, "pushed %s\ndigest %s\n", ref, digest)
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&tag, "image", "", "the image of a multi-image tarball (its tag) or of an OCI layout (its ref.name annotation)")
	return cmd
}

// pushLocal writes the image of a docker-save tarball or an OCI layout
// directory to ref and returns its digest.
func pushLocal(path, pick string, ref name.Tag, opts []remote.Option) (v1.Hash, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return v1.Hash{}, err
	}
	if fi.IsDir() {
		return pushLayout(path, pick, ref, opts)
	}
	var tagp *name.Tag
	if pick != "" {
		t, err := name.NewTag(pick, name.WeakValidation)
		if err != nil {
			return v1.Hash{}, usageError{fmt.Errorf("--image %q: %w", pick, err)}
		}
		tagp = &t
	}
	img, err := tarball.ImageFromPath(path, tagp)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s is not an image tarball ('docker save' output): %w", path, err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return img.Digest()
}

// pushLayout pushes the one image (or index) of an OCI layout, or the one
// whose ref.name annotation is pick.
func pushLayout(dir, pick string, ref name.Tag, opts []remote.Option) (v1.Hash, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s is not an OCI image layout: %w", filepath.Clean(dir), err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return v1.Hash{}, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	var chosen []v1.Descriptor
	for _, d := range m.Manifests {
		if pick == "" || d.Annotations["org.opencontainers.image.ref.name"] == pick {
			chosen = append(chosen, d)
		}
	}
	switch {
	case len(chosen) == 0 && pick != "":
		return v1.Hash{}, usageError{fmt.Errorf("%s has no image named %q", dir, pick)}
	case len(chosen) == 0:
		return v1.Hash{}, fmt.Errorf("%s holds no image", dir)
	case len(chosen) > 1:
		return v1.Hash{}, usageError{fmt.Errorf("%s holds %d images: pick one with --image", dir, len(chosen))}
	}
	d := chosen[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return v1.Hash{}, err
		}
		if err := remote.WriteIndex(ref, child, opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
		}
		return d.Digest, nil
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return img.Digest()
}
