package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// eeView is what the client reads of an execution environment.
type eeView struct {
	Name        string `json:"name"`
	Namespace   string `json:"namespace"`
	Description string `json:"description"`
	Private     bool   `json:"private"`
	Pull        *struct {
		Tag      string `json:"tag"`
		ByTag    string `json:"by_tag"`
		ByDigest string `json:"by_digest"`
	} `json:"pull"`
	Remote *struct {
		Name         string `json:"name"`
		URL          string `json:"url"`
		UpstreamName string `json:"upstream_name"`
		Href         string `json:"href"`
		LastSync     *struct {
			State string `json:"state"`
		} `json:"last_sync"`
	} `json:"remote"`
	UpdatedAt       time.Time `json:"updated_at"`
	UseInController []struct {
		Controller string `json:"controller"`
		URL        string `json:"url"`
	} `json:"use_in_controller"`
}

type imageView struct {
	Digest       string    `json:"digest"`
	MediaType    string    `json:"media_type"`
	Size         int64     `json:"size"`
	Tags         []string  `json:"tags"`
	OS           string    `json:"os"`
	Architecture string    `json:"architecture"`
	IsIndex      bool      `json:"is_index"`
	CreatedAt    time.Time `json:"created_at"`
	Platforms    []struct {
		Digest       string `json:"digest"`
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
	} `json:"platforms"`
}

func eePath(name string, parts ...string) string {
	p := "/api/v1/execution-environments/" + escapeName(name) + "/"
	if len(parts) > 0 {
		p += "_content/" + strings.Join(parts, "/") + "/"
	}
	return p
}

func newEECmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:     "ee",
		Aliases: []string{"execution-environments"},
		Short:   "Execution environments: list, show, readme, images, tag, untag, delete, sync",
	}
	o.flags(cmd)
	var noWait bool
	waitFlag := func(c *cobra.Command) {
		c.Flags().BoolVar(&noWait, "no-wait", false, "print the task and return instead of waiting for it")
	}

	var ns, contains string
	var remote, local bool
	list := &cobra.Command{
		Use: "list", Short: "List the execution environments you may see", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			q := url.Values{}
			if ns != "" {
				q.Set("namespace", ns)
			}
			if contains != "" {
				q.Set("name__contains", contains)
			}
			switch {
			case remote && local:
				return usageError{fmt.Errorf("--remote and --local exclude each other")}
			case remote:
				q.Set("remote", "true")
			case local:
				q.Set("remote", "false")
			}
			path := "/api/v1/execution-environments/"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			items, raws, err := listAll[eeView](cmd.Context(), c, path)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(orEmptyJSON(raws))
			}
			rows := make([][]string, len(items))
			for i, e := range items {
				kind, pull := "local", "-"
				if e.Remote != nil {
					kind = "remote"
				}
				if e.Pull != nil {
					pull = e.Pull.ByTag
				}
				rows[i] = []string{e.Name, kind, fmt.Sprint(e.Private), pull, ago(e.UpdatedAt)}
			}
			return c.table([]string{"NAME", "TYPE", "PRIVATE", "PULL", "UPDATED"}, rows)
		},
	}
	list.Flags().StringVar(&ns, "namespace", "", "only this namespace")
	list.Flags().StringVar(&contains, "name-contains", "", "only names containing this")
	list.Flags().BoolVar(&remote, "remote", false, "only mirrored (remote) execution environments")
	list.Flags().BoolVar(&local, "local", false, "only local (pushed) execution environments")

	show := &cobra.Command{
		Use: "show NAME", Short: "Show an execution environment", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var e eeView
			raw, err := c.call(cmd.Context(), http.MethodGet, eePath(args[0]), nil, &e)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(raw)
			}
			kv := [][2]string{{"name", e.Name}, {"namespace", e.Namespace}, {"description", orDash(e.Description)},
				{"private", fmt.Sprint(e.Private)}, {"updated", ago(e.UpdatedAt)}}
			if e.Pull != nil {
				kv = append(kv, [2]string{"pull", e.Pull.ByTag}, [2]string{"pull by digest", e.Pull.ByDigest})
			}
			if e.Remote != nil {
				kv = append(kv, [2]string{"remote", e.Remote.Name + " (" + e.Remote.URL + ")"})
				if e.Remote.UpstreamName != "" {
					kv = append(kv, [2]string{"upstream name", e.Remote.UpstreamName})
				}
				state := "never synced"
				if e.Remote.LastSync != nil {
					state = e.Remote.LastSync.State
				}
				kv = append(kv, [2]string{"last sync", state})
			}
			for _, l := range e.UseInController {
				kv = append(kv, [2]string{"use in controller", l.URL})
			}
			return c.fields(kv)
		},
	}

	var setFile string
	readme := &cobra.Command{
		Use:   "readme NAME",
		Short: "Print an execution environment's readme, or replace it with --set FILE (- for standard input)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			path := eePath(args[0], "readme")
			if setFile == "" {
				var r struct {
					Text string `json:"text"`
				}
				raw, err := c.call(cmd.Context(), http.MethodGet, path, nil, &r)
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(raw)
				}
				_, err = io.WriteString(c.out, r.Text)
				return err
			}
			var text []byte
			if setFile == "-" {
				text, err = io.ReadAll(cmd.InOrStdin())
			} else {
				text, err = os.ReadFile(setFile)
			}
			if err != nil {
				return err
			}
			raw, _, err := c.raw(cmd.Context(), http.MethodPut, path, "text/markdown", bytes.NewReader(text))
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(raw)
			}
			fmt.Fprintf(c.out, "readme of %s saved (%d bytes)\n", args[0], len(text))
			return nil
		},
	}
	readme.Flags().StringVar(&setFile, "set", "", "replace the readme with this markdown file (- reads standard input)")

	images := &cobra.Command{
		Use: "images NAME", Short: "List the images (digests, tags, platforms) of an execution environment", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			items, raws, err := listAll[imageView](cmd.Context(), c, eePath(args[0], "images"))
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(orEmptyJSON(raws))
			}
			var rows [][]string
			for _, m := range items {
				platform := m.OS + "/" + m.Architecture
				if m.IsIndex {
					platform = fmt.Sprintf("index (%d platforms)", len(m.Platforms))
				}
				rows = append(rows, []string{shortDigest(m.Digest), orDash(strings.Join(m.Tags, ",")), platform, fmt.Sprint(m.Size), ago(m.CreatedAt)})
				for _, p := range m.Platforms {
					rows = append(rows, []string{"  " + shortDigest(p.Digest), "", strings.TrimSuffix(p.OS+"/"+p.Architecture+"/"+p.Variant, "/"), "", ""})
				}
			}
			return c.table([]string{"DIGEST", "TAGS", "PLATFORM", "SIZE", "CREATED"}, rows)
		},
	}

	var move bool
	tag := &cobra.Command{
		Use:   "tag NAME DIGEST|TAG NEWTAG",
		Short: "Add a tag to an image (--move to move an existing tag)",
		Long:  "tag points NEWTAG at the image DIGEST (or the image an existing TAG names), in a task; the image keeps its other tags.",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			d, err := resolveDigest(cmd, c, args[0], args[1])
			if err != nil {
				return err
			}
			var raw []byte
			if move {
				raw, err = c.call(cmd.Context(), http.MethodPut, eePath(args[0], "tags", url.PathEscape(args[2])), map[string]string{"digest": d}, nil)
			} else {
				raw, err = c.call(cmd.Context(), http.MethodPost, eePath(args[0], "tags"), map[string]string{"tag": args[2], "digest": d}, nil)
			}
			if err != nil {
				return err
			}
			return c.started(cmd, raw, noWait)
		},
	}
	tag.Flags().BoolVar(&move, "move", false, "move NEWTAG when it names another image")
	waitFlag(tag)

	untag := &cobra.Command{
		Use: "untag NAME TAG", Short: "Remove a tag (the image stays)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodDelete, eePath(args[0], "tags", url.PathEscape(args[1])), nil, nil)
			if err != nil {
				return err
			}
			return c.started(cmd, raw, noWait)
		},
	}
	waitFlag(untag)

	del := &cobra.Command{
		Use:   "delete NAME [DIGEST]",
		Short: "Delete an image by digest, or the whole execution environment",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			path := eePath(args[0])
			if len(args) == 2 {
				path = eePath(args[0], "images", args[1])
			}
			raw, err := c.call(cmd.Context(), http.MethodDelete, path, nil, nil)
			if err != nil {
				return err
			}
			return c.started(cmd, raw, noWait)
		},
	}
	waitFlag(del)

	sync := &cobra.Command{
		Use: "sync NAME", Short: "Sync a mirrored (remote) execution environment from its remote", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			id, err := remoteImageID(cmd, c, args[0])
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodPost, "/api/v1/remote-images/"+url.PathEscape(id)+"/sync/", nil, nil)
			if err != nil {
				return err
			}
			return c.started(cmd, raw, noWait)
		},
	}
	waitFlag(sync)

	cmd.AddCommand(list, show, readme, images, tag, untag, del, sync)
	return cmd
}

// resolveDigest returns ref when it is a digest, else the digest of the
// image the tag ref names in name.
func resolveDigest(cmd *cobra.Command, c *apiClient, name, ref string) (string, error) {
	if strings.Contains(ref, ":") {
		return ref, nil
	}
	var p page[imageView]
	if _, err := c.call(cmd.Context(), http.MethodGet, eePath(name, "images")+"?tag="+url.QueryEscape(ref), nil, &p); err != nil {
		return "", err
	}
	if len(p.Results) == 0 {
		return "", fmt.Errorf("%s has no tag %q", name, ref)
	}
	return p.Results[0].Digest, nil
}

// remoteImageID finds the remote image (remote execution environment) of
// an image name.
func remoteImageID(cmd *cobra.Command, c *apiClient, name string) (string, error) {
	var p page[struct {
		ID   string `json:"id"`
		Href string `json:"pulp_href"`
		Name string `json:"name"`
	}]
	if _, err := c.call(cmd.Context(), http.MethodGet, "/api/v1/remote-images/?name="+url.QueryEscape(name), nil, &p); err != nil {
		return "", err
	}
	for _, r := range p.Results {
		if r.Name == name {
			if r.ID != "" {
				return r.ID, nil
			}
			return lastSegment(r.Href), nil
		}
	}
	return "", fmt.Errorf("%s is not a remote execution environment (only mirrored images sync)", name)
}

func lastSegment(href string) string {
	parts := strings.Split(strings.TrimSuffix(href, "/"), "/")
	return parts[len(parts)-1]
}

// orEmptyJSON is a JSON array of the raw items ("[]" for none).
func orEmptyJSON(raws []json.RawMessage) []byte {
	if raws == nil {
		raws = []json.RawMessage{}
	}
	b, _ := json.Marshal(raws)
	return b
}

func newRegistriesCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use: "registries", Short: "List the remote registries execution environments are mirrored from", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			type registry struct {
				Name string `json:"name"`
				URL  string `json:"url"`
				Href string `json:"pulp_href"`
			}
			items, raws, err := listAll[registry](cmd.Context(), c, "/api/v1/registries/")
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(orEmptyJSON(raws))
			}
			rows := make([][]string, len(items))
			for i, r := range items {
				rows[i] = []string{r.Name, r.URL}
			}
			return c.table([]string{"NAME", "URL"}, rows)
		},
	}
	o.flags(cmd)
	return cmd
}

func newImagesCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "images [REPO[:TAG]]",
		Short: `List the images you may pull as "repo:tag", or show one image's status`,
		Long: `images lists "repo:tag" for every image you may pull (of one repository
when REPO is given). With REPO:TAG (or REPO@sha256:…) it shows that image's
status: READY, PENDING (a build is making it) or FAILED.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			if len(args) == 1 && (strings.Contains(args[0], "@") || strings.Contains(lastSegment(args[0]), ":")) {
				var st struct {
					Image  string `json:"image"`
					Status string `json:"status"`
					Digest string `json:"digest"`
					Pull   string `json:"pull"`
				}
				raw, err := c.call(cmd.Context(), http.MethodGet, "/api/v1/registry/images/"+escapeName(args[0])+"/", nil, &st)
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(raw)
				}
				return c.fields([][2]string{{"image", st.Image}, {"status", st.Status}, {"digest", orDash(st.Digest)}, {"pull", st.Pull}})
			}
			path := "/api/v1/registry/images/"
			if len(args) == 1 {
				path += "?repo=" + url.QueryEscape(args[0])
			}
			var refs []string
			raw, err := c.call(cmd.Context(), http.MethodGet, path, nil, &refs)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(raw)
			}
			for _, r := range refs {
				fmt.Fprintln(c.out, r)
			}
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}
