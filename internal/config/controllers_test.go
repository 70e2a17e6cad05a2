package config

import (
	"strings"
	"testing"
)

func TestControllerURLs(t *testing.T) {
	c := Default()
	c.DataDir = t.TempDir()
	c.ControllerURLs = SplitList(" https://controller.example.com , http://awx.internal:8052/ ")
	if err := c.Validate(); err != nil {
		t.Fatalf("good controller URLs: %v", err)
	}
	if len(c.ControllerURLs) != 2 || c.ControllerURLs[0] != "https://controller.example.com" {
		t.Fatalf("split = %q", c.ControllerURLs)
	}
	c.ControllerURLs = []string{"controller.example.com"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `controller URL "controller.example.com"`) {
		t.Fatalf("a URL without scheme: %v", err)
	}
}
