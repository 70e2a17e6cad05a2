package config

import (
	"strings"
	"testing"
)

func TestBuildPushRegistry(t *testing.T) {
	for _, tc := range []struct {
		listen, registry string
		insecureList     []string
		want             string
		insecure         bool
	}{
		{listen: "localhost:5001", want: "localhost:5001", insecure: true},
		{listen: "0.0.0.0:5001", want: "127.0.0.1:5001", insecure: true},
		{listen: ":5001", want: "127.0.0.1:5001", insecure: true},
		{listen: "[::]:5001", want: "[::1]:5001", insecure: true},
		{listen: "10.1.2.3:5001", want: "10.1.2.3:5001", insecure: true}, // berth serve speaks plain HTTP
		{listen: ":5001", registry: "127.0.0.1:6000", want: "127.0.0.1:6000", insecure: true},
		{listen: ":5001", registry: "registry.example.com", want: "registry.example.com"},
		{listen: ":5001", registry: "berth.internal:5001", insecureList: []string{"berth.internal:5001"}, want: "berth.internal:5001", insecure: true},
	} {
		c := Default()
		c.Listen, c.BuildRegistry, c.BuildInsecureRegistries = tc.listen, tc.registry, tc.insecureList
		got, insecure := c.BuildPushRegistry()
		if got != tc.want || insecure != tc.insecure {
			t.Errorf("listen %q, registry %q: BuildPushRegistry() = %q, %v; want %q, %v", tc.listen, tc.registry, got, insecure, tc.want, tc.insecure)
		}
	}
}

func TestValidateBuildRegistries(t *testing.T) {
	c := Default()
	c.DataDir = t.TempDir()
	c.BuildRegistry = "http://registry.example.com"
	c.BuildInsecureRegistries = []string{"ok.example.com:5000", "bad/path"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "build registry") || !strings.Contains(err.Error(), `"bad/path"`) ||
		strings.Contains(err.Error(), "ok.example.com") {
		t.Fatalf("Validate() = %v", err)
	}
	if got := SplitList(" a:1, ,b ,"); strings.Join(got, "|") != "a:1|b" {
		t.Errorf("SplitList = %q", got)
	}
}
