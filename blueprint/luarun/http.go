//go:build lua

package luarun

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"github.com/edk-go/edk/lua"
)

// maxBody bounds a response body handed to the script.
const maxBody = 8 << 20

type httpClient struct{ c *http.Client }

type httpRequest struct {
	method, url, body string
	header            http.Header
	user, pass        string
	basic             bool
	cookies           []*http.Cookie
}

func (r *Runtime) rewrite(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("invalid URL %q", raw)
	}
	// Browsers and curl send a space in a query as %20; Go's client
	// would send it raw and get 400 Bad Request.
	if strings.Contains(u.RawQuery, " ") {
		u.RawQuery = strings.ReplaceAll(u.RawQuery, " ", "%20")
		raw = u.String()
	}
	origin := u.Scheme + "://" + u.Host
	for _, rw := range r.opts.HTTPRewrites {
		if rw.From != "" && rw.From != origin {
			continue
		}
		u.Scheme, u.Host = rw.To.Scheme, rw.To.Host
		u.Path = strings.TrimSuffix(rw.To.Path, "/") + u.Path
		u.RawPath = ""
		return u.String(), nil
	}
	return raw, nil
}

func (r *Runtime) newHTTPClient(opts map[string]any) *httpClient {
	timeout := 10 * time.Second
	if t, ok := opts["timeout"]; ok {
		switch x := t.(type) {
		case int64:
			timeout = time.Duration(x) * time.Second
		case float64:
			timeout = time.Duration(x * float64(time.Second))
		}
	}
	// A request may not outlive the watchdog of the call making it.
	timeout = min(timeout, r.opts.CallTimeout)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if b, _ := opts["insecure_tls"].(bool); b {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the script asked for it
	}
	c := &http.Client{Timeout: timeout, Transport: tr}
	if b, _ := opts["enable_cookie_jar"].(bool); b {
		c.Jar, _ = cookiejar.New(nil)
	}
	return &httpClient{c: c}
}

func (h *httpClient) Close() error {
	h.c.CloseIdleConnections()
	return nil
}

func (r *Runtime) do(s *lua.State, c *httpClient, req *httpRequest) (int, error) {
	target, err := r.rewrite(req.url)
	if err != nil {
		return pushErr(s, err)
	}
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(r.ctx, req.method, target, body)
	if err != nil {
		return pushErr(s, err)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if req.basic {
		hr.SetBasicAuth(req.user, req.pass)
	}
	for _, ck := range req.cookies {
		hr.AddCookie(ck)
	}
	resp, err := c.c.Do(hr)
	if err != nil {
		return pushErr(s, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return pushErr(s, fmt.Errorf("read response: %w", err))
	}
	if len(b) > maxBody {
		return pushErr(s, fmt.Errorf("response body larger than %d bytes", maxBody))
	}
	cookies := []any{}
	for _, ck := range resp.Cookies() {
		exp := ""
		if !ck.Expires.IsZero() {
			exp = ck.Expires.UTC().Format(http.TimeFormat)
		}
		cookies = append(cookies, map[string]any{"name": ck.Name, "value": ck.Value, "expires": exp})
	}
	headers := map[string]any{}
	for k, vs := range resp.Header {
		var parts []any
		for _, v := range vs {
			for _, p := range strings.Split(v, ";") {
				for _, q := range strings.Split(p, ",") {
					if q = strings.TrimSpace(q); q != "" {
						parts = append(parts, q)
					}
				}
			}
		}
		headers[k] = parts
	}
	_ = s.Push(map[string]any{"code": int64(resp.StatusCode), "body": string(b), "cookies": cookies})
	_ = s.Push(headers)
	s.PushRef(r.classes["headers"])
	s.GetGlobal("setmetatable")
	s.PushCopy(-3)
	s.PushCopy(-3)
	_ = s.Call(2, 0, 0)
	s.Pop(1) // the metatable
	s.RawSetField(-2, "headers")
	s.PushNil()
	return 2, nil
}

func (r *Runtime) installHTTP() {
	headerValues := func(s *lua.State) []string {
		name := strings.ToLower(s.ToString(2))
		var out []string
		s.PushNil()
		for s.Next(1) {
			if s.Type(-2) == lua.TypeString && strings.ToLower(s.ToString(-2)) == name && s.Type(-1) == lua.TypeTable {
				for i := 1; i <= s.RawLen(-1); i++ {
					s.RawGetIndex(-1, int64(i))
					out = append(out, s.ToString(-1))
					s.Pop(1)
				}
			}
			s.Pop(1)
		}
		return out
	}
	r.class("headers", fns{
		"get": func(s *lua.State) (int, error) {
			if v := headerValues(s); len(v) > 0 {
				s.PushString(v[0])
			} else {
				s.PushNil()
			}
			return 1, nil
		},
		"values": func(s *lua.State) (int, error) {
			_ = s.Push(headerValues(s))
			return 1, nil
		},
	}, false)
	r.class("http_request", fns{
		"set_header": func(s *lua.State) (int, error) {
			req, err := self[*httpRequest](r, s, "set_header")
			if err != nil {
				return 0, err
			}
			req.header.Set(s.ToString(2), s.ToString(3))
			return 0, nil
		},
		"set_basic_auth": func(s *lua.State) (int, error) {
			req, err := self[*httpRequest](r, s, "set_basic_auth")
			if err != nil {
				return 0, err
			}
			req.basic, req.user, req.pass = true, s.ToString(2), s.ToString(3)
			return 0, nil
		},
		"add_cookie": func(s *lua.State) (int, error) {
			req, err := self[*httpRequest](r, s, "add_cookie")
			if err != nil {
				return 0, err
			}
			req.cookies = append(req.cookies, &http.Cookie{Name: s.ToString(2), Value: s.ToString(3)})
			return 0, nil
		},
	}, true)
	get := func(c *httpClient, s *lua.State, base int) (int, error) {
		u, err := argString(s, base, "get")
		if err != nil {
			return 0, err
		}
		return r.do(s, c, &httpRequest{method: "GET", url: u, header: http.Header{}})
	}
	post := func(c *httpClient, s *lua.State, base int) (int, error) {
		u, err := argString(s, base, "post")
		if err != nil {
			return 0, err
		}
		h := http.Header{}
		h.Set("Content-Type", s.ToString(base+1))
		return r.do(s, c, &httpRequest{method: "POST", url: u, body: s.ToString(base + 2), header: h})
	}
	postForm := func(c *httpClient, s *lua.State, base int) (int, error) {
		u, err := argString(s, base, "post_form")
		if err != nil {
			return 0, err
		}
		v, err := s.ToValue(base + 1)
		if err != nil {
			return pushErr(s, err)
		}
		form := url.Values{}
		if m, ok := v.(map[string]any); ok {
			for k, x := range m {
				form.Set(k, fmt.Sprint(x))
			}
		}
		h := http.Header{}
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		return r.do(s, c, &httpRequest{method: "POST", url: u, body: form.Encode(), header: h})
	}
	method := func(name string, fn func(*httpClient, *lua.State, int) (int, error)) lua.Func {
		return func(s *lua.State) (int, error) {
			c, err := self[*httpClient](r, s, name)
			if err != nil {
				return 0, err
			}
			return fn(c, s, 2)
		}
	}
	r.class("http_client", fns{
		"get":       method("get", get),
		"post":      method("post", post),
		"post_form": method("post_form", postForm),
		"do_request": func(s *lua.State) (int, error) {
			c, err := self[*httpClient](r, s, "do_request")
			if err != nil {
				return 0, err
			}
			if s.Type(2) != lua.TypeTable || s.RawGetField(2, "__edk_id") != lua.TypeNumber {
				return 0, fmt.Errorf("do_request: want a request made by http.request")
			}
			req, ok := r.objects[int(s.ToInteger(-1))].(*httpRequest)
			s.Pop(1)
			if !ok {
				return 0, fmt.Errorf("do_request: want a request made by http.request")
			}
			return r.do(s, c, req)
		},
	}, true)
	var def *httpClient
	defaultClient := func() *httpClient {
		if def == nil {
			def = r.newHTTPClient(nil)
		}
		return def
	}
	r.setTable("http", fns{
		"client": func(s *lua.State) (int, error) {
			opts := map[string]any{}
			if s.Type(1) == lua.TypeTable {
				v, err := s.ToValue(1)
				if err != nil {
					return 0, err
				}
				if m, ok := v.(map[string]any); ok {
					opts = m
				}
			}
			r.pushObject("http_client", r.newHTTPClient(opts))
			return 1, nil
		},
		"request": func(s *lua.State) (int, error) {
			m, err := argString(s, 1, "http.request")
			if err != nil {
				return 0, err
			}
			u, err := argString(s, 2, "http.request")
			if err != nil {
				return 0, err
			}
			r.pushObject("http_request", &httpRequest{method: strings.ToUpper(m), url: u, body: s.ToString(3), header: http.Header{}})
			return 1, nil
		},
		"get":       func(s *lua.State) (int, error) { return get(defaultClient(), s, 1) },
		"post":      func(s *lua.State) (int, error) { return post(defaultClient(), s, 1) },
		"post_form": func(s *lua.State) (int, error) { return postForm(defaultClient(), s, 1) },
	})
}
