package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const (
	// maxTagPages stops a registry whose pagination never ends.
	maxTagPages = 100_000
	// maxTagPage bounds one page of the tag list.
	maxTagPage = 64 << 20
)

// Tags lists a repository's tags, in the order the registry gives them,
// following its pagination (Link: <…>; rel="next") to the end. Next-page
// links must stay on the registry's scheme and host.
func (c *Client) Tags(ctx context.Context, repo string) ([]string, error) {
	op := "list tags of " + repo
	r, err := c.repository(repo)
	if err != nil {
		return nil, &Error{Op: op, Kind: ErrInvalidName, Message: err.Error()}
	}
	rt, err := c.transport(ctx, r)
	if err != nil {
		return nil, c.fail(op, err)
	}
	hc := c.httpClient(rt)
	next := c.url("/v2/" + r.RepositoryStr() + "/tags/list")
	if c.opts.pageSize > 0 {
		next += "?n=" + strconv.Itoa(c.opts.pageSize)
	}
	var tags []string
	seenTag := map[string]bool{}
	seenPage := map[string]bool{}
	for page := 0; next != ""; page++ {
		if seenPage[next] || page == maxTagPages {
			return nil, &Error{Op: op, Method: http.MethodGet, URL: redactURL(mustParse(next)), Kind: ErrProtocol,
				Message: fmt.Sprintf("the tag list's pagination does not end (after %d pages)", page)}
		}
		seenPage[next] = true
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, c.fail(op, err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, c.fail(op, err)
		}
		if resp.StatusCode != http.StatusOK {
			e := c.statusError(op, resp)
			resp.Body.Close()
			return nil, e
		}
		var body struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, maxTagPage)).Decode(&body)
		resp.Body.Close()
		if err != nil {
			return nil, &Error{Op: op, Method: req.Method, URL: redactURL(req.URL), StatusCode: resp.StatusCode,
				Kind: ErrProtocol, Message: "malformed tag list", Err: err, detail: err.Error()}
		}
		for _, t := range body.Tags {
			if !seenTag[t] {
				seenTag[t] = true
				tags = append(tags, t)
			}
		}
		if next, err = c.nextPage(resp); err != nil {
			return nil, &Error{Op: op, Method: req.Method, URL: redactURL(req.URL), StatusCode: resp.StatusCode,
				Kind: ErrProtocol, Message: err.Error()}
		}
	}
	return tags, nil
}

// nextPage is the absolute URL of the Link header's rel="next", or "".
func (c *Client) nextPage(resp *http.Response) (string, error) {
	for _, v := range resp.Header.Values("Link") {
		for v != "" {
			start := strings.IndexByte(v, '<')
			if start < 0 {
				break
			}
			end := strings.IndexByte(v[start:], '>')
			if end < 0 {
				return "", fmt.Errorf("malformed Link header %q", oneLine(v, 200))
			}
			target := v[start+1 : start+end]
			v = v[start+end+1:]
			params := v
			if i := strings.IndexByte(v, '<'); i >= 0 {
				params = v[:i]
			}
			if !relIsNext(params) {
				continue
			}
			ref, err := url.Parse(target)
			if err != nil {
				return "", fmt.Errorf("malformed next-page link %q", oneLine(target, 200))
			}
			u := resp.Request.URL.ResolveReference(ref)
			if u.Scheme != c.base.Scheme || !strings.EqualFold(u.Host, c.base.Host) {
				return "", fmt.Errorf("refusing next-page link to %s: not on the registry %s://%s", redactURL(u), c.base.Scheme, c.base.Host)
			}
			return u.String(), nil
		}
	}
	return "", nil
}

// relIsNext reports whether link parameters such as `; rel="next"` include
// the relation "next".
func relIsNext(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
			continue
		}
		for rel := range strings.FieldsSeq(strings.Trim(strings.TrimSpace(v), `",`)) {
			if strings.EqualFold(rel, "next") {
				return true
			}
		}
	}
	return false
}

func mustParse(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		return &url.URL{}
	}
	return u
}
