// Package console serves the hub's web console: one page (index.html) and
// its assets, built from web/ into assets/ and embedded, so the hub needs
// no internet and no Node at run time. The page itself carries no data and
// no secret; everything it shows comes from the hub's HTTP API with the
// token the person types in (kept in the browser tab's sessionStorage).
//
// New wraps the API handler: GET / and GET /console/... are the console,
// every other request goes to the API untouched.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// AssetPrefix is the URL path under which the console's assets are served.
const AssetPrefix = "/console/"

//go:embed assets
var embedded embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	data        []byte
	contentType string
	etag        string
}

type handler struct {
	next   http.Handler
	assets map[string]asset // by name below assets/
}

// New returns a handler that serves the console and passes every other
// request to next (the API).
func New(next http.Handler) http.Handler {
	h, err := newHandler(next, embedded)
	if err != nil {
		panic(err) // the embedded files are part of the binary: a build mistake
	}
	return h
}

func newHandler(next http.Handler, files fs.FS) (*handler, error) {
	h := &handler{next: next, assets: map[string]asset{}}
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(data)
		h.assets[strings.TrimPrefix(p, "assets/")] = asset{data: data, contentType: ct,
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: read embedded assets: %w", err)
	}
	if _, ok := h.assets["index.html"]; !ok {
		return nil, fmt.Errorf("console: embedded assets lack index.html (run npm run build in hub/console/web)")
	}
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := h.route(r)
	if !ok {
		h.next.ServeHTTP(w, r)
		return
	}
	a, found := h.assets[name]
	if !found {
		http.Error(w, "404 no such console file", http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	// Revalidate every time: the files change with the binary, and the
	// ETag makes an unchanged file a 304.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	if name == "index.html" {
		hd.Set("Content-Security-Policy", contentSecurityPolicy(r))
	}
	if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodHead {
		hd.Set("Content-Length", fmt.Sprint(len(a.data)))
		return
	}
	_, _ = w.Write(a.data)
}

// route says which asset a request asks for; ok is false for requests that
// belong to the API.
func (h *handler) route(r *http.Request) (name string, ok bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "", false
	}
	p := r.URL.Path
	switch {
	case p == "/" || p == "/index.html":
		return "index.html", true
	case strings.HasPrefix(p, AssetPrefix):
		name := strings.TrimPrefix(p, AssetPrefix)
		if name == "" || strings.Contains(name, "..") {
			return "", true // a 404
		}
		return name, true
	}
	return "", false
}

// contentSecurityPolicy allows only the page's own scripts, styles, API
// calls and WebSocket streams: the console loads nothing from elsewhere.
// ws:// and wss:// of the host are named because older browsers do not
// count them as 'self'.
func contentSecurityPolicy(r *http.Request) string {
	connect := "'self'"
	if host := r.Host; host != "" && strings.Trim(host, hostChars) == "" {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
		"connect-src " + connect + "; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
}

// hostChars are the characters of a host:port, IPv6 literals included; a
// Host header with anything else is left out of the policy.
const hostChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]"
