package test

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/core/db"
)

// junitSuites is the part of the conformance suite's junit.xml we check.
type junitSuites struct {
	Suites []struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestConformance runs the OCI distribution-spec conformance suite (all of
// pull, push, content discovery and content management, every optional data
// set it knows) against a real berth serve, and fails unless every test
// passes. The binary's exit code alone is not trusted: its report is read.
func TestConformance(t *testing.T) {
	bin := requireTool(t, "conformance")
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			env := NewEnv(t, dialect, false)
			srv := env.Serve(t)
			results := t.TempDir()
			cmd := exec.Command(bin)
			cmd.Dir = results
			cmd.Env = append(os.Environ(),
				"OCI_REGISTRY="+srv.Addr,
				"OCI_TLS=disabled",
				"OCI_RESULTS_DIR="+results,
				"OCI_REPO1=conformance/repo1",
				"OCI_REPO2=conformance/repo2",
				"OCI_USERNAME=admin",
				"OCI_PASSWORD=admin-e2e-password",
				"OCI_API_BLOBS_UPLOAD_CANCEL=true",
				"OCI_API_MANIFESTS_TAG_PARAM=true",
				"OCI_API_BLOBS_DIGEST_HEADER=true",
				"OCI_API_MANIFESTS_DIGEST_HEADER=true",
				"OCI_LOG=warn",
			)
			out, err := cmd.CombinedOutput()
			text := string(out)
			if !regexp.MustCompile(`(?i)OCI Conformance Result: PASS`).MatchString(text) {
				t.Errorf("conformance did not pass (exit: %v):\n%s", err, tail(text, 150))
			}
			raw, rerr := os.ReadFile(filepath.Join(results, "junit.xml"))
			if rerr != nil {
				t.Fatalf("no junit.xml report (%v); output:\n%s", rerr, tail(text, 80))
			}
			var rep junitSuites
			if err := xml.Unmarshal(raw, &rep); err != nil {
				t.Fatalf("parse junit.xml: %v", err)
			}
			total, failed := 0, []string{}
			for _, s := range rep.Suites {
				total += s.Tests
				for _, c := range s.Cases {
					if c.Failure != nil || c.Error != nil {
						failed = append(failed, c.Name)
					}
				}
			}
			if total == 0 {
				t.Fatalf("the conformance report counts no tests; output:\n%s", tail(text, 80))
			}
			if len(failed) > 0 {
				t.Errorf("%d of %d conformance tests failed:\n  %s", len(failed), total, strings.Join(failed, "\n  "))
			}
			t.Logf("conformance on %s: %d tests, %d failed", dialect, total, len(failed))
		})
	}
}
