package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

type catalogEntry struct {
	Name        string   `json:"name"`
	DisplayName string   `json:"display_name"`
	Type        string   `json:"type"`
	URL         string   `json:"url"`
	Global      bool     `json:"global"`
	Groups      []string `json:"groups"`
	System      bool     `json:"system"`
	Building    bool     `json:"building"`
	Ready       bool     `json:"ready"`
}

func newCatalogCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{Use: "catalog", Short: "The image catalog: list, create, delete"}
	o.flags(cmd)
	list := &cobra.Command{
		Use: "list", Short: "List the catalog images you may use", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			items, raws, err := listAll[catalogEntry](cmd.Context(), c, "/api/v1/catalog/")
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(orEmptyJSON(raws))
			}
			rows := make([][]string, len(items))
			for i, e := range items {
				name := e.Name
				if e.Building {
					name += " ⚠ building"
				}
				access := "global"
				if !e.Global {
					access = orDash(strings.Join(e.Groups, ","))
				}
				if e.System {
					access += " (system)"
				}
				rows[i] = []string{name, e.DisplayName, e.Type, orDash(e.URL), access}
			}
			return c.table([]string{"NAME", "DISPLAY NAME", "TYPE", "URL", "GROUPS"}, rows)
		},
	}
	var in struct {
		description, typ, url, gpuURL, build string
		groups                               []string
		global, system, secretStdin          bool
	}
	create := &cobra.Command{
		Use:   "create DISPLAY-NAME",
		Short: "Add an image to the catalog (administrators)",
		Long: `create adds an existing image (--url) or a custom image made by a build
(--build) to the catalog. The display name takes lowercase letters, digits,
'-' and '.'; the image name is made from it. --pull-secret-stdin reads the
pull secret from standard input; it is stored encrypted and never shown.`,
		Example: `  berth catalog create tf-2.15 --type gpu --url registry.example.com/ml/tf:2.15 --group data-science
  berth catalog create base.py --type universal --url r.example.com/py:3.12 --gpu-url r.example.com/py:3.12-cuda --global`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			body := map[string]any{"display_name": args[0], "description": in.description, "type": in.typ,
				"global": in.global, "system": in.system, "groups": in.groups}
			if in.url != "" {
				body["url"] = in.url
			}
			if in.gpuURL != "" {
				body["gpu_url"] = in.gpuURL
			}
			if in.build != "" {
				body["build"] = in.build
			}
			if in.groups == nil {
				body["groups"] = []string{}
			}
			if in.secretStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && err != io.EOF {
					return err
				}
				body["pull_secret"] = strings.TrimRight(line, "\r\n")
			}
			var e catalogEntry
			raw, err := c.call(cmd.Context(), http.MethodPost, "/api/v1/catalog/", body, &e)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(raw)
			}
			fmt.Fprintf(c.out, "added %s (image name %s)\n", e.DisplayName, e.Name)
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&in.description, "description", "", "what the image is for")
	f.StringVar(&in.typ, "type", "cpu", "cpu, gpu or universal")
	f.StringVar(&in.url, "url", "", "the container image URL of an existing image")
	f.StringVar(&in.gpuURL, "gpu-url", "", "a separate image URL for GPU use (universal images)")
	f.StringVar(&in.build, "build", "", "href or ID of the build that makes the image (instead of --url)")
	f.StringSliceVar(&in.groups, "group", nil, "a group that may use the image (repeatable)")
	f.BoolVar(&in.global, "global", false, "every group may use the image")
	f.BoolVar(&in.system, "system", false, "mark it a system image")
	f.BoolVar(&in.secretStdin, "pull-secret-stdin", false, "read a pull secret from standard input")
	del := &cobra.Command{
		Use: "delete NAME", Short: "Remove an image from the catalog (administrators)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			if _, err := c.call(cmd.Context(), http.MethodDelete, "/api/v1/catalog/"+url.PathEscape(args[0])+"/", nil, nil); err != nil {
				return err
			}
			if !c.json {
				fmt.Fprintf(c.out, "removed %s from the catalog\n", args[0])
			}
			return nil
		},
	}
	cmd.AddCommand(list, create, del)
	return cmd
}

func newBuildCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{Use: "build", Short: "Image builds: create, logs, cancel, rebuild"}
	o.flags(cmd)
	var noWait bool
	var spec struct {
		base, tag, aptFile, condaFile, pipFile, containerfile string
	}
	specBody := func(cmd *cobra.Command, target string) (map[string]any, error) {
		body := map[string]any{}
		if target != "" {
			name, tag := target, ""
			if i := strings.LastIndexByte(target, ':'); i > strings.LastIndexByte(target, '/') {
				name, tag = target[:i], target[i+1:]
			}
			body["target"] = name
			if tag != "" {
				body["tag"] = tag
			}
		}
		if spec.base != "" {
			body["base"] = spec.base
		}
		for key, file := range map[string]string{"apt": spec.aptFile, "conda": spec.condaFile, "pip": spec.pipFile, "containerfile": spec.containerfile} {
			if file == "" {
				continue
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, err
			}
			if key == "containerfile" {
				body[key] = string(b)
			} else {
				body[key] = strings.Split(strings.TrimSpace(string(b)), "\n")
			}
		}
		return body, nil
	}
	specFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&spec.base, "base", "", "base image URL")
		c.Flags().StringVar(&spec.aptFile, "apt", "", "file of APT packages, one per line")
		c.Flags().StringVar(&spec.condaFile, "conda", "", "file of conda match specs, one per line")
		c.Flags().StringVar(&spec.pipFile, "pip", "", "file of pip requirements, one per line")
		c.Flags().StringVar(&spec.containerfile, "containerfile", "", "a Containerfile to build instead of packages")
		c.Flags().BoolVar(&noWait, "no-wait", false, "return once the build started instead of waiting for it")
	}
	started := func(cmd *cobra.Command, c *apiClient, raw []byte) error {
		var b struct {
			Href string  `json:"pulp_href"`
			Task *string `json:"task"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			return err
		}
		if noWait || b.Task == nil {
			if c.json {
				return c.printJSON(raw)
			}
			fmt.Fprintln(c.out, b.Href)
			return nil
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "build %s\n", b.Href)
		return waitTask(cmd, c, *b.Task, 0)
	}
	create := &cobra.Command{
		Use: "create NAME:TAG --base IMAGE [--apt FILE] [--conda FILE] [--pip FILE]", Short: "Build an image and push it to NAME:TAG",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			body, err := specBody(cmd, args[0])
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodPost, "/api/v1/builds/", body, nil)
			if err != nil {
				return err
			}
			return started(cmd, c, raw)
		},
	}
	specFlags(create)
	rebuild := &cobra.Command{
		Use: "rebuild BUILD [--base …] [--apt FILE] …", Short: "Build again, with the changes given", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			body, err := specBody(cmd, "")
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodPost, buildPath(args[0])+"rebuild/", body, nil)
			if err != nil {
				return err
			}
			return started(cmd, c, raw)
		},
	}
	specFlags(rebuild)
	var follow bool
	logs := &cobra.Command{
		Use: "logs BUILD [-f]", Short: "Print a build's log (-f follows it until the build ends)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			path := buildPath(args[0]) + "logs/"
			if follow {
				path += "?follow=true"
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, c.url(path), nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Token "+c.cfg.Token)
			resp, err := (&http.Client{}).Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 300 {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				return &apiError{resp.StatusCode, http.MethodGet, path, b}
			}
			_, err = io.Copy(c.out, resp.Body)
			return err
		},
	}
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "stream new lines until the build ends")
	cancel := &cobra.Command{
		Use: "cancel BUILD", Short: "Cancel a build", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodPost, buildPath(args[0])+"cancel/", nil, nil)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(raw)
			}
			fmt.Fprintf(c.out, "cancel of %s requested\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, logs, cancel, rebuild)
	return cmd
}

// buildPath is the API path of a build given by href or ID.
func buildPath(ref string) string {
	if i := strings.Index(ref, "/api/v1/builds/"); i >= 0 {
		return strings.TrimSuffix(ref[i:], "/") + "/"
	}
	return "/api/v1/builds/" + url.PathEscape(ref) + "/"
}
