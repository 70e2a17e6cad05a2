package api_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
)

const (
	password      = "s3cret-Passw0rd-xyzzy"
	clientKey     = "-----BEGIN PRIVATE KEY-----plugh-----END PRIVATE KEY-----"
	proxyPassword = "proxy-Secret-frobozz"
)

var secrets = []string{password, clientKey, proxyPassword}

// noSecrets fails when a raw response body holds a secret.
func noSecrets(t *testing.T, what string, body []byte) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(string(body), s) {
			t.Errorf("%s answered a secret: %s", what, body)
		}
	}
}

func hidden(r api.RemoteResponse) map[string]bool {
	out := map[string]bool{}
	for _, h := range r.HiddenFields {
		out[h.Name] = h.IsSet
	}
	return out
}

func TestRemoteCRUDAndSecrets(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		body := map[string]any{
			"name": "docker-hub", "url": "https://registry-1.docker.io", "username": "bob",
			"password": password, "client_key": clientKey, "proxy_url": "http://proxy:3128",
			"proxy_username": "carol", "proxy_password": proxyPassword, "rate_limit": 2.5,
		}
		raw := env.Call(http.MethodPost, remotesPath, body, http.StatusCreated, nil)
		noSecrets(t, "create", raw)
		var rem api.RemoteResponse
		_ = jsonUnmarshal(raw, &rem)
		if rem.Name != "docker-hub" || rem.URL != "https://registry-1.docker.io" || rem.Username == nil || *rem.Username != "bob" ||
			!rem.TLSValidation || rem.Policy != "immediate" || rem.DownloadConcurrency != 4 || rem.RateLimit != 2.5 || rem.CACert != nil {
			t.Errorf("created %+v", rem)
		}
		if h := hidden(rem); !reflect.DeepEqual(h, map[string]bool{"password": true, "client_key": true, "proxy_password": true}) {
			t.Errorf("hidden_fields %v", h)
		}
		for _, f := range []string{`"password"`, `"client_key"`, `"proxy_password"`} {
			if strings.Contains(string(raw), f+":") {
				t.Errorf("response has field %s: %s", f, raw)
			}
		}

		// Every way of reading the remote keeps its secrets.
		noSecrets(t, "read", env.Call(http.MethodGet, rem.Href, nil, http.StatusOK, nil))
		noSecrets(t, "typed list", env.Call(http.MethodGet, remotesPath, nil, http.StatusOK, nil))
		noSecrets(t, "generic list", env.Call(http.MethodGet, api.Prefix+"remotes/", nil, http.StatusOK, nil))
		noSecrets(t, "duplicate", env.Do(http.MethodPost, remotesPath, body).Body)
		noSecrets(t, "bad update", env.Do(http.MethodPatch, rem.Href, map[string]any{"password": password, "url": "ftp://x"}).Body)

		// Stored sealed: no column of the row holds a secret in plain text,
		// and the store opens them again.
		ref, _ := api.ParseHref(rem.Href)
		var row map[string]any
		if err := env.DB.Raw("SELECT * FROM remotes WHERE id = ?", ref.ID).Scan(&row).Error; err != nil {
			t.Fatal(err)
		}
		for col, v := range row {
			for _, s := range secrets {
				if str, ok := v.(string); ok && strings.Contains(str, s) {
					t.Errorf("column %s holds a secret in plain text", col)
				}
			}
		}
		stored, err := env.Store.Remote(t.Context(), ref.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stored.PasswordEnc, "v1:") {
			t.Errorf("password stored as %q", stored.PasswordEnc)
		}
		creds, err := env.Store.OpenCredentials(stored)
		if err != nil || creds.Password != password || creds.ClientKey != clientKey || creds.ProxyPassword != proxyPassword {
			t.Errorf("opened credentials %+v, %v", creds, err)
		}

		// PATCH leaves secrets it does not name; null clears one.
		env.Call(http.MethodPatch, rem.Href, map[string]any{"url": "https://mirror.example.com/", "tls_validation": false}, http.StatusOK, &rem)
		if rem.URL != "https://mirror.example.com/" || rem.TLSValidation || !hidden(rem)["password"] {
			t.Errorf("after PATCH: %+v", rem)
		}
		env.Call(http.MethodPatch, rem.Href, map[string]any{"password": nil, "ca_cert": "PEM"}, http.StatusOK, &rem)
		if h := hidden(rem); h["password"] || !h["client_key"] || !h["proxy_password"] || rem.CACert == nil || *rem.CACert != "PEM" {
			t.Errorf("after clearing the password: %+v", rem)
		}
		// PUT replaces everything: what it leaves out is reset.
		env.Call(http.MethodPut, rem.Href, map[string]any{"name": "docker-hub", "url": "https://registry-1.docker.io", "policy": "on_demand"}, http.StatusOK, &rem)
		if h := hidden(rem); h["password"] || h["client_key"] || h["proxy_password"] || rem.Username != nil || rem.ProxyURL != nil ||
			!rem.TLSValidation || rem.Policy != "on_demand" || rem.RateLimit != 0 || rem.CACert != nil {
			t.Errorf("after PUT: %+v", rem)
		}

		// A repository linked to the remote loses the link when it goes.
		repo := createRepo(t, env, "mirror")
		env.Call(http.MethodPatch, repo.Href, map[string]any{"remote": rem.Href}, http.StatusOK, &repo)
		env.Call(http.MethodDelete, rem.Href, nil, http.StatusNoContent, nil)
		wantDetail(t, env.Do(http.MethodGet, rem.Href, nil), http.StatusNotFound, "not found")
		env.Call(http.MethodGet, repo.Href, nil, http.StatusOK, &repo)
		if repo.Remote != nil {
			t.Errorf("repository still points at the deleted remote: %+v", repo)
		}
		wantDetail(t, env.Do(http.MethodDelete, rem.Href, nil), http.StatusNotFound, "not found")
	})
}

func TestRemoteInvalidInput(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		rem := createRemote(t, env, map[string]any{"name": "up", "url": "https://example.com", "password": password})
		cases := []struct {
			name   string
			body   map[string]any
			fields map[string]string
		}{
			{"missing", map[string]any{"password": password}, map[string]string{"name": api.MsgRequired, "url": api.MsgRequired}},
			{"unknown", map[string]any{"name": "n", "url": "https://x", "upstream": "y"}, map[string]string{"upstream": api.MsgUnexpected}},
			{"bad url", map[string]any{"name": "n", "url": "ftp://x"}, map[string]string{"url": "http"}},
			{"credentials in url", map[string]any{"name": "n", "url": "https://u:p@x"}, map[string]string{"url": "credentials"}},
			{"policy", map[string]any{"name": "n", "url": "https://x", "policy": "lazy"}, map[string]string{"policy": "immediate"}},
			{"concurrency", map[string]any{"name": "n", "url": "https://x", "download_concurrency": 0}, map[string]string{"download_concurrency": "between"}},
			{"tls type", map[string]any{"name": "n", "url": "https://x", "tls_validation": "yes"}, map[string]string{"tls_validation": "boolean"}},
			{"rate type", map[string]any{"name": "n", "url": "https://x", "rate_limit": "fast"}, map[string]string{"rate_limit": "number"}},
			{"password type", map[string]any{"name": "n", "url": "https://x", "password": 1234}, map[string]string{"password": "string"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := env.Do(http.MethodPost, remotesPath, tc.body)
				noSecrets(t, "rejected create", r.Body)
				wantFields(t, r, tc.fields)
			})
		}
		wantDetail(t, env.Do(http.MethodPost, remotesPath, map[string]any{"name": "up", "url": "https://other"}), http.StatusConflict, "already exists")

		before := env.Call(http.MethodGet, rem.Href, nil, http.StatusOK, nil)
		for _, body := range []map[string]any{
			{"password": "new", "url": "not a url"},
			{"password": "new", "bogus": true},
			{"password": "new", "name": "with space"},
		} {
			if r := env.Do(http.MethodPatch, rem.Href, body); r.Status != http.StatusBadRequest {
				t.Errorf("PATCH %v: %d %s", body, r.Status, r.Body)
			}
		}
		other := createRemote(t, env, map[string]any{"name": "other", "url": "https://example.com"})
		wantDetail(t, env.Do(http.MethodPatch, other.Href, map[string]any{"name": "up"}), http.StatusConflict, "already exists")
		if after := env.Call(http.MethodGet, rem.Href, nil, http.StatusOK, nil); string(after) != string(before) {
			t.Errorf("rejected updates changed the remote:\n%s\nwant\n%s", after, before)
		}
		ref, _ := api.ParseHref(rem.Href)
		stored, _ := env.Store.Remote(t.Context(), ref.ID)
		if creds, _ := env.Store.OpenCredentials(stored); creds.Password != password {
			t.Errorf("a rejected update changed the password")
		}
	})
}
