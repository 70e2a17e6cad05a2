package builds

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/plugins/container/build"
)

const basePassword = "base-pull-s3cret"

func TestBuildPackages(t *testing.T) {
	each(t, envOptions{}, func(t *testing.T, e *env) {
		e.runner.baseUser = "1000"
		var v View
		raw := e.call("alice", http.MethodPost, Path, map[string]any{
			"target": "team/app", "tag": "v1", "base": "python:3.12",
			"base_credentials": map[string]string{"username": "puller", "password": basePassword},
			"apt":              "curl\n# comment\ngit=1:2.39.2-1.1\n",
			"pip":              []string{"numpy==1.26.*", "markerpkg>0.0.1"},
		}, http.StatusAccepted, &v)
		if strings.Contains(string(raw), basePassword) {
			t.Fatalf("the answer shows the pull secret: %s", raw)
		}
		if v.Task == nil || !v.BaseCredentialsSet || // (the fast fake build may have ended already)
			v.ResolvedBase != "docker.io/library/python:3.12" || v.Mode != "packages" ||
			v.Images[0] != "registry.example.com/team/app:v1" || v.Images[1] != "registry.example.com/team/app:"+v.UniqueTag ||
			strings.Join(v.APT, "|") != "curl|# comment|git=1:2.39.2-1.1" || !strings.Contains(v.Containerfile, "FROM docker.io/library/python:3.12\n") {
			t.Fatalf("created build = %+v", v)
		}
		var stored string
		e.g.Raw(`SELECT base_secret FROM container_builds WHERE id = ?`, v.ID).Scan(&stored)
		if stored == "" || strings.Contains(stored, basePassword) {
			t.Errorf("stored secret %q is not sealed", stored)
		}

		done := e.wait("alice", v.Href)
		if done.Phase != PhaseSucceeded || done.Digest == nil || done.Error != nil || done.FinishedAt == nil || done.StartedAt == nil {
			t.Fatalf("build ended %+v", done)
		}
		if !strings.Contains(done.Containerfile, "USER root\n") || !strings.HasSuffix(done.Containerfile, "USER 1000\n") {
			t.Errorf("the Containerfile was not rendered again for the base's user:\n%s", done.Containerfile)
		}
		r := e.runner.lastRun(t)
		wantDest := []string{testRegistry + "/team/app:v1", testRegistry + "/team/app:" + v.UniqueTag}
		if fmt.Sprint(r.Job.Destinations) != fmt.Sprint(wantDest) || !strings.HasSuffix(r.Dir, v.ID) {
			t.Errorf("runner got destinations %v in %s", r.Job.Destinations, r.Dir)
		}
		if c := r.Job.PullAuth["index.docker.io"]; c.Username != "puller" || c.Password != basePassword {
			t.Errorf("pull credentials %v", r.Job.PullAuth)
		}
		if c := r.Job.PushAuth[testRegistry]; c.Username != "alice" || !strings.HasPrefix(c.Password, "berth_") {
			t.Errorf("push credentials %v", r.Job.PushAuth)
		}
		if rev := e.users.revokedTokens(); len(rev) != 1 {
			t.Errorf("revoked tokens %v, want the build's one", rev)
		}
		log := e.logLines("alice", v.Href, "")
		text := strings.Join(log, "\n")
		if !strings.Contains(text, "STEP 2/2: RUN install") || log[len(log)-1] != "Build succeeded: "+*done.Digest ||
			strings.Contains(text, basePassword) || strings.Contains(text, "berth_secret") {
			t.Errorf("log:\n%s", text)
		}
		if tail := e.logLines("alice", v.Href, "?tail=2"); len(tail) != 2 || tail[1] != log[len(log)-1] {
			t.Errorf("tail=2: %q", tail)
		}

		// Rescale's status.
		var st ImageStatus
		e.call("carol", http.MethodGet, Path+"status/?image=team/app:v1", nil, http.StatusOK, &st)
		if st.Status != StatusReady || st.Digest != *done.Digest || st.Build == nil || *st.Build != v.Href {
			t.Errorf("status = %+v", st)
		}
		e.call("carol", http.MethodGet, Path+"status/?image=registry.example.com/team/app:"+v.UniqueTag, nil, http.StatusOK, &st)
		if st.Status != StatusReady {
			t.Errorf("status by unique tag = %+v", st)
		}
		e.call("carol", http.MethodGet, Path+"status/?image=team/other:v1", nil, http.StatusNotFound, nil)
		e.call("carol", http.MethodGet, Path+"status/?image=team/app@sha256:00", nil, http.StatusBadRequest, nil)

		// The list and its filters.
		var page struct {
			Count   int    `json:"count"`
			Results []View `json:"results"`
		}
		e.call("alice", http.MethodGet, Path+"?phase=succeeded&target=team/app", nil, http.StatusOK, &page)
		if page.Count != 1 || page.Results[0].ID != v.ID {
			t.Errorf("list = %+v", page)
		}
		e.call("alice", http.MethodGet, Path+"?phase__in=pending,running", nil, http.StatusOK, &page)
		if page.Count != 0 {
			t.Errorf("running builds: %d", page.Count)
		}
		e.call("alice", http.MethodGet, Path+"?state=x", nil, http.StatusBadRequest, nil)
	})
}

func TestBuildValidation(t *testing.T) {
	each(t, envOptions{}, func(t *testing.T, e *env) {
		var verr map[string]any
		raw := e.call("alice", http.MethodPost, Path, map[string]any{
			"target": "team/app", "base": "python:3.12",
			"apt":   []string{"curl", "curl; touch /pwned", "vim", "$(reboot)"},
			"pip":   "requests\nx `id`\n",
			"conda": []string{"numpy && rm -rf /"},
		}, http.StatusBadRequest, &verr)
		for _, want := range []string{`line 2: \"curl; touch /pwned\"`, `line 4: \"$(reboot)\"`, "line 2: \\\"x `id`\\\"", `line 1: \"numpy \u0026\u0026 rm -rf /\"`} {
			if !strings.Contains(string(raw), want) {
				t.Errorf("answer does not name %s: %s", want, raw)
			}
		}
		for _, body := range []map[string]any{
			{"target": "team/app", "base": "python:3.12"},                   // no packages
			{"target": "app", "base": "python:3.12", "pip": "x"},            // no namespace
			{"target": "team/app", "base": "python:3.12", "pip": 3},         // neither list nor text
			{"target": "team/app", "containerfile": "FROM x\n", "pip": "x"}, // both modes
			{"target": "team/app", "base": "python:3.12", "pip": "x", "base_credentials": map[string]string{"password": "p"}},
			{"target": "team/app", "base": "python:3.12", "pip": "x", "surprise": true},
		} {
			e.call("alice", http.MethodPost, Path, body, http.StatusBadRequest, nil)
		}
		var page struct{ Count int }
		e.call("admin", http.MethodGet, Path, nil, http.StatusOK, &page)
		if page.Count != 0 {
			t.Errorf("refused requests made %d builds", page.Count)
		}
	})
}

func TestBuildPermissions(t *testing.T) {
	each(t, envOptions{}, func(t *testing.T, e *env) {
		e.images.put("base/img", "1", "sha256:"+strings.Repeat("01", 32))
		e.images.put("team/app", "old", "sha256:"+strings.Repeat("02", 32))
		e.images.private["team/app"] = true
		e.images.private["base/img"] = true
		body := map[string]any{"target": "team/app", "tag": "v1", "base": "base/img:1", "pip": "requests"}

		e.call("", http.MethodPost, Path, body, http.StatusUnauthorized, nil)
		e.call("bob", http.MethodPost, Path, body, http.StatusForbidden, nil)   // no push on team
		e.call("carol", http.MethodPost, Path, body, http.StatusForbidden, nil) // pull only
		var v View
		e.call("alice", http.MethodPost, Path, body, http.StatusAccepted, &v)
		if v.ResolvedBase != "registry.example.com/base/img:1" || !strings.Contains(v.Containerfile, "FROM "+testRegistry+"/base/img:1\n") {
			t.Errorf("a base in Berth resolved to %q:\n%s", v.ResolvedBase, v.Containerfile)
		}
		e.wait("alice", v.Href)
		r := e.runner.lastRun(t)
		if c := r.Job.PullAuth[testRegistry]; c.Username != "alice" || !strings.HasPrefix(c.Password, "berth_") {
			t.Errorf("Berth's base is not pulled with the creator's token: %v", r.Job.PullAuth)
		}
		if !strings.HasPrefix(r.Job.Containerfile, "FROM "+testRegistry+"/base/img:1\n") {
			t.Errorf("Containerfile:\n%s", r.Job.Containerfile)
		}

		// Reading needs pull: bob sees nothing of team's private builds.
		e.call("bob", http.MethodGet, v.Href, nil, http.StatusNotFound, nil)
		e.call("bob", http.MethodGet, v.Href+"logs/", nil, http.StatusNotFound, nil)
		e.call("bob", http.MethodGet, Path+"status/?image=team/app:v1", nil, http.StatusForbidden, nil)
		var page struct{ Count int }
		e.call("bob", http.MethodGet, Path, nil, http.StatusOK, &page)
		if page.Count != 0 {
			t.Errorf("bob lists %d builds", page.Count)
		}
		e.call("carol", http.MethodGet, Path, nil, http.StatusOK, &page)
		if page.Count != 1 {
			t.Errorf("carol lists %d builds, want 1", page.Count)
		}
		e.call("carol", http.MethodGet, v.Href, nil, http.StatusOK, nil)
		e.call("carol", http.MethodPost, v.Href+"rebuild/", nil, http.StatusForbidden, nil)

		// A base in Berth needs the pull permission on its namespace.
		e.images.put("secret/img", "1", "sha256:"+strings.Repeat("03", 32))
		e.images.private["secret/img"] = true
		body["base"] = "secret/img:1"
		e.call("alice", http.MethodPost, Path, body, http.StatusForbidden, nil)
		// A name Berth does not serve is Docker Hub's.
		body["base"] = "library/nothere:1"
		e.call("alice", http.MethodPost, Path, body, http.StatusAccepted, &v)
		if v.ResolvedBase != "docker.io/library/nothere:1" {
			t.Errorf("resolved base %q", v.ResolvedBase)
		}
		e.wait("alice", v.Href)
	})
}

func TestBuildCancelAndStatus(t *testing.T) {
	each(t, envOptions{}, func(t *testing.T, e *env) {
		started := make(chan struct{}, 1)
		e.runner.do = func(ctx context.Context, job build.Job, out io.Writer) (*build.Result, error) {
			fmt.Fprintf(out, "sleeping\n")
			started <- struct{}{}
			<-ctx.Done()
			return nil, &build.BuildError{Phase: build.PhaseBuild, Err: ctx.Err()}
		}
		var v View
		e.call("alice", http.MethodPost, Path, map[string]any{"target": "team/slow", "base": "python:3.12", "pip": "x"}, http.StatusAccepted, &v)
		if v.Tag != "latest" {
			t.Errorf("default tag %q", v.Tag)
		}
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatal("the build never ran")
		}
		e.waitPhase("alice", v.Href, PhaseRunning)
		var st ImageStatus
		e.call("alice", http.MethodGet, Path+"status/?image=team/slow", nil, http.StatusOK, &st)
		if st.Status != StatusPending || st.Phase != PhaseRunning {
			t.Errorf("status while running = %+v", st)
		}
		e.call("carol", http.MethodPost, v.Href+"cancel/", nil, http.StatusForbidden, nil)
		e.call("alice", http.MethodPost, v.Href+"cancel/", nil, http.StatusAccepted, nil)
		c := e.wait("alice", v.Href)
		if c.Phase != PhaseCancelled || *c.TaskState != "canceled" || c.Error == nil || *c.Error != "cancelled" {
			t.Errorf("cancelled build = %+v", c)
		}
		if log := e.logLines("alice", v.Href, ""); log[len(log)-1] != "Build cancelled." {
			t.Errorf("log: %q", log)
		}
		e.call("alice", http.MethodPost, v.Href+"cancel/", nil, http.StatusConflict, nil)
		e.call("alice", http.MethodGet, Path+"status/?image=team/slow:latest", nil, http.StatusOK, &st)
		if st.Status != StatusFailed || st.Reason != "cancelled" {
			t.Errorf("status after the cancel = %+v", st)
		}

		// A failed build: FAILED with its reason; a waiting build is PENDING
		// and cancels at once.
		e.runner.do = func(ctx context.Context, job build.Job, out io.Writer) (*build.Result, error) {
			fmt.Fprintf(out, "Error: building at STEP \"RUN x\": exit status 2\n")
			return nil, &build.BuildError{Phase: build.PhaseBuild, Step: 2, Steps: 2, Instruction: "RUN x", ExitCode: 2, Err: build.ErrStepFailed}
		}
		e.call("alice", http.MethodPost, Path, map[string]any{"target": "team/bad", "tag": "1", "base": "python:3.12", "pip": "x"}, http.StatusAccepted, &v)
		f := e.wait("alice", v.Href)
		if f.Phase != PhaseFailed || f.Error == nil || *f.Error != "step 2/2 (RUN x) exited with status 2" {
			t.Errorf("failed build = %+v", f)
		}
		e.call("alice", http.MethodGet, Path+"status/?image=team/bad:1", nil, http.StatusOK, &st)
		if st.Status != StatusFailed || st.Reason != *f.Error {
			t.Errorf("status after a failure = %+v", st)
		}
		e.runner.baseErr = &build.BuildError{Phase: build.PhasePull, Ref: "docker.io/library/nope:1", Err: build.ErrBaseNotFound}
		e.call("alice", http.MethodPost, Path, map[string]any{"target": "team/bad", "tag": "2", "base": "nope:1", "pip": "x"}, http.StatusAccepted, &v)
		f = e.wait("alice", v.Href)
		if f.Phase != PhaseFailed || f.Error == nil || *f.Error != "base image docker.io/library/nope:1: not found" {
			t.Errorf("missing base: %+v", f)
		}
		if log := strings.Join(e.logLines("alice", v.Href, ""), "\n"); !strings.Contains(log, "Build failed: base image docker.io/library/nope:1: not found") {
			t.Errorf("log:\n%s", log)
		}
	})
}

func TestRebuild(t *testing.T) {
	each(t, envOptions{}, func(t *testing.T, e *env) {
		var v View
		e.call("alice", http.MethodPost, Path, map[string]any{
			"target": "team/app", "tag": "v1", "base": "python:3.12", "pip": "a",
			"base_credentials": map[string]string{"username": "puller", "password": basePassword},
		}, http.StatusAccepted, &v)
		e.wait("alice", v.Href)

		// Same registry: the pull secret stays; the changed list changes.
		var r1 View
		e.call("alice", http.MethodPost, v.Href+"rebuild/", map[string]any{"pip": []string{"b"}, "base": "python:3.13"}, http.StatusAccepted, &r1)
		if r1.Previous == nil || *r1.Previous != v.Href || !r1.BaseCredentialsSet || r1.Tag != "v1" ||
			strings.Join(r1.Pip, ",") != "b" || r1.UniqueTag == v.UniqueTag {
			t.Errorf("rebuild = %+v", r1)
		}
		e.wait("alice", r1.Href)
		if c := e.runner.lastRun(t).Job.PullAuth["index.docker.io"]; c.Password != basePassword {
			t.Errorf("rebuild pull auth %v", e.runner.lastRun(t).Job.PullAuth)
		}
		// Another registry: the secret is not sent there.
		var r2 View
		e.call("alice", http.MethodPost, r1.Href+"rebuild/", map[string]any{"base": "quay.io/org/python:3"}, http.StatusAccepted, &r2)
		if r2.BaseCredentialsSet {
			t.Errorf("the pull secret followed the base to another registry")
		}
		e.wait("alice", r2.Href)
		if _, ok := e.runner.lastRun(t).Job.PullAuth["quay.io"]; ok {
			t.Errorf("credentials sent to quay.io")
		}
		// Removed on request; an empty rebuild builds the same spec again.
		var r3 View
		e.call("alice", http.MethodPost, v.Href+"rebuild/", map[string]any{"base_credentials": nil}, http.StatusAccepted, &r3)
		if r3.BaseCredentialsSet || r3.UniqueTag != v.UniqueTag {
			t.Errorf("rebuild without credentials = %+v", r3)
		}
		e.wait("alice", r3.Href)
		e.call("alice", http.MethodPost, Path+"00000000-0000-0000-0000-000000000000/rebuild/", nil, http.StatusNotFound, nil)
	})
}

// multipartBody builds a create request with a build context.
func multipartBody(t *testing.T, spec map[string]any, ctxTar []byte) (*bytes.Buffer, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	js, _ := json.Marshal(spec)
	w, _ := mw.CreateFormField("spec")
	w.Write(js)
	if ctxTar != nil {
		fw, _ := mw.CreateFormFile("context", "ctx.tar")
		fw.Write(ctxTar)
	}
	mw.Close()
	return &body, mw.FormDataContentType()
}

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}

func TestBuildContainerfileWithContext(t *testing.T) {
	each(t, envOptions{}, func(t *testing.T, e *env) {
		post := func(spec map[string]any, ctxTar []byte, want int) View {
			t.Helper()
			body, ct := multipartBody(t, spec, ctxTar)
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+Path, body)
			req.Header.Set("Content-Type", ct)
			code, raw := e.send("alice", req)
			if code != want {
				t.Fatalf("multipart POST: %d, want %d: %s", code, want, raw)
			}
			var v View
			json.Unmarshal(raw, &v)
			return v
		}
		archive := tarOf(t, map[string]string{"app.txt": "hello\n"})
		cf := "FROM " + testRegistry + "/base/img:1\nCOPY app.txt /app.txt\n"
		v := post(map[string]any{"target": "team/raw", "containerfile": cf}, archive, http.StatusAccepted)
		if v.Mode != "containerfile" || !v.HasContext || v.Containerfile != cf || v.ResolvedBase != "" {
			t.Fatalf("raw build = %+v", v)
		}
		e.wait("alice", v.Href)
		r := e.runner.lastRun(t)
		if !bytes.Equal(r.Context, archive) || r.Job.Containerfile != cf {
			t.Errorf("runner got context %d bytes, Containerfile %q", len(r.Context), r.Job.Containerfile)
		}
		if c := r.Job.PullAuth[testRegistry]; c.Username != "alice" {
			t.Errorf("FROM images in Berth are not pulled as the creator: %v", r.Job.PullAuth)
		}
		// A rebuild keeps the context.
		var rb View
		e.call("alice", http.MethodPost, v.Href+"rebuild/", map[string]any{"tag": "v2"}, http.StatusAccepted, &rb)
		e.wait("alice", rb.Href)
		if r := e.runner.lastRun(t); !bytes.Equal(r.Context, archive) || !rb.HasContext {
			t.Errorf("rebuild lost the context")
		}

		post(map[string]any{"target": "team/raw", "base": "python:3", "pip": "x"}, archive, http.StatusBadRequest)          // packages + context
		post(map[string]any{"target": "team/raw", "containerfile": cf}, []byte("not a tar archive"), http.StatusBadRequest) // not tar
		post(map[string]any{"target": "team/raw", "containerfile": cf},
			tarOf(t, map[string]string{"../escape": "x"}), http.StatusBadRequest)
		body, ct := multipartBody(t, map[string]any{"target": "team/raw", "containerfile": cf}, nil)
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+Path, body)
		req.Header.Set("Content-Type", ct)
		if code, raw := e.send("alice", req); code != http.StatusAccepted {
			t.Errorf("multipart without context: %d %s", code, raw)
		}
	})
}

func TestBuildLogFollowAndBounds(t *testing.T) {
	each(t, envOptions{logHead: 200, logTail: 300}, func(t *testing.T, e *env) {
		release := make(chan struct{})
		e.runner.do = func(ctx context.Context, job build.Job, out io.Writer) (*build.Result, error) {
			fmt.Fprintf(out, "first line\n")
			<-release
			for i := range 200 {
				fmt.Fprintf(out, "line %03d %s\n", i, strings.Repeat("x", 20))
			}
			return &build.Result{Digest: "sha256:" + strings.Repeat("cd", 32), Pushed: []build.Pushed{{Reference: job.Destinations[0]}, {Reference: job.Destinations[1]}}}, nil
		}
		var v View
		e.call("alice", http.MethodPost, Path, map[string]any{"target": "team/app", "base": "python:3", "pip": "x"}, http.StatusAccepted, &v)

		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+v.Href+"logs/?follow=true", nil)
		req.Header.Set("X-User", "alice")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		lines := make(chan string, 1000)
		go func() {
			defer close(lines)
			sc := bufioScanner(resp.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// The first line streams while the build still runs.
		for l := range lines {
			if l == "first line" {
				break
			}
		}
		if p := e.waitPhase("alice", v.Href, PhaseRunning).Phase; p != PhaseRunning {
			t.Fatalf("phase %s", p)
		}
		close(release)
		var rest []string
		for l := range lines {
			rest = append(rest, l)
		}
		if len(rest) == 0 || !strings.HasPrefix(rest[len(rest)-1], "Build succeeded: ") {
			t.Fatalf("followed log ends %q", rest)
		}
		// The stored log is bounded: the head, a marker, the tail.
		log := e.logLines("alice", v.Href, "")
		text := strings.Join(log, "\n")
		if !strings.HasPrefix(log[0], "Building team/app:latest") || !strings.Contains(text, "lines omitted …]") ||
			!strings.Contains(text, "line 199") || strings.Contains(text, "line 100 ") || len(text) > 1000 {
			t.Errorf("bounded log (%d bytes):\n%s", len(text), text)
		}
		var n int64
		e.g.Raw(`SELECT COUNT(*) FROM container_build_logs WHERE build_id = ?`, v.ID).Scan(&n)
		if n > 30 {
			t.Errorf("%d log rows kept", n)
		}
	})
}

func TestBuildsOpenAPI(t *testing.T) {
	e := newEnv(t, testdb.Open(t, db.SQLite, sets...), envOptions{})
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	e.call("", http.MethodGet, api.DocPath, nil, http.StatusOK, &doc)
	for path, ops := range map[string][]string{
		"/api/v1/builds/":              {"get", "post"},
		"/api/v1/builds/status/":       {"get"},
		"/api/v1/builds/{id}/":         {"get"},
		"/api/v1/builds/{id}/logs/":    {"get"},
		"/api/v1/builds/{id}/cancel/":  {"post"},
		"/api/v1/builds/{id}/rebuild/": {"post"},
	} {
		for _, m := range ops {
			if doc.Paths[path][m].OperationID == "" {
				t.Errorf("%s %s is not in the OpenAPI document", m, path)
			}
		}
	}
}
