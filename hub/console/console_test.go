package console

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// apiStub stands for the API: it answers every request it gets with 418,
// so a test sees which requests the console let through.
var apiStub = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })

func get(t *testing.T, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServesThePageAndAssetsWithoutAToken(t *testing.T) {
	h := New(apiStub)
	for _, c := range []struct{ path, ctype, body string }{
		{"/", "text/html", `id="login-form"`},
		{"/index.html", "text/html", `<script type="module" src="/console/app.js">`},
		{"/console/app.js", "javascript", "uPlot"},
		{"/console/app.css", "text/css", ".uplot"},
		{"/console/THIRD_PARTY_LICENSES.txt", "text/plain", "MIT License"},
	} {
		rec := get(t, h, "GET", c.path)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), c.ctype) || !strings.Contains(rec.Body.String(), c.body) {
			t.Errorf("GET %s = %d %q, body has %q: %v", c.path, rec.Code, rec.Header().Get("Content-Type"), c.body, strings.Contains(rec.Body.String(), c.body))
		}
	}
	page := get(t, h, "GET", "/")
	csp := page.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "ws://example.com") {
		t.Errorf("CSP = %q", csp)
	}
	if page.Header().Get("X-Frame-Options") != "DENY" {
		t.Error("the page may be framed")
	}
}

func TestEverythingElseGoesToTheAPI(t *testing.T) {
	h := New(apiStub)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v3/devices"},
		{"POST", "/"},
		{"DELETE", "/console/app.js"},
		{"GET", "/favicon.ico"},
		{"GET", "/consoleX"},
	} {
		if rec := get(t, h, c.method, c.path); rec.Code != http.StatusTeapot {
			t.Errorf("%s %s = %d, want it passed to the API", c.method, c.path, rec.Code)
		}
	}
}

func TestUnknownAssetIs404(t *testing.T) {
	h := New(apiStub)
	for _, p := range []string{"/console/", "/console/nope.js", "/console/../hub.db", "/console/assets/app.js"} {
		if rec := get(t, h, "GET", p); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, rec.Code)
		}
	}
}

func TestETagAndHead(t *testing.T) {
	h := New(apiStub)
	first := get(t, h, "GET", "/console/app.js")
	etag := first.Header().Get("ETag")
	if etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, first.Header().Get("Cache-Control"))
	}
	if rec := get(t, h, "GET", "/console/app.js", "If-None-Match", etag); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("revalidation = %d with %d bytes, want 304 and none", rec.Code, rec.Body.Len())
	}
	if rec := get(t, h, "HEAD", "/"); rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD / = %d, %d bytes, length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
}

func TestBadHostIsLeftOutOfThePolicy(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = "evil; script-src *"
	if csp := contentSecurityPolicy(req); strings.Contains(csp, "evil") || strings.Contains(csp, "script-src *") {
		t.Errorf("CSP = %q", csp)
	}
}

func TestAssetsWithoutIndexAreABuildMistake(t *testing.T) {
	if _, err := newHandler(apiStub, fstest.MapFS{"assets/app.js": {Data: []byte("x")}}); err == nil || !strings.Contains(err.Error(), "npm run build") {
		t.Errorf("err = %v", err)
	}
}

// The committed bundle is built from the committed sources: build.mjs
// writes the hash of what it read (web/src, build.mjs, package-lock.json)
// into app.js's banner, so a source edited without `npm run build` fails
// here; the page is also compared as it is, since the build copies it.
func TestBundleIsBuiltFromTheSources(t *testing.T) {
	src, err := os.ReadFile("web/src/index.html")
	if err != nil {
		t.Fatal(err)
	}
	built, err := embedded.ReadFile("assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if string(src) != string(built) {
		t.Error("assets/index.html differs from web/src/index.html: run npm ci && npm run build in hub/console/web")
	}
	js, _ := embedded.ReadFile("assets/app.js")
	if want := "Sources sha256 " + sourcesHash(t); !strings.Contains(string(js), want) {
		t.Errorf("assets/app.js was not built from the sources in web (its banner lacks %q): run npm ci && npm run build in hub/console/web", want)
	}
	lic, _ := embedded.ReadFile("assets/THIRD_PARTY_LICENSES.txt")
	if !strings.Contains(string(js), "THIRD_PARTY_LICENSES.txt") || !strings.Contains(string(lic), "Leon Sorokin") {
		t.Error("the bundle lost uPlot's licence notice")
	}
}

// sourcesHash is build.mjs's hash of the console's sources: each file's
// path below web/ and content, each followed by a NUL, in build.mjs's order.
func sourcesHash(t *testing.T) string {
	t.Helper()
	entries, err := os.ReadDir("web/src")
	if err != nil {
		t.Fatal(err)
	}
	var inputs []string
	for _, e := range entries {
		inputs = append(inputs, "src/"+e.Name()) // ReadDir sorts by name, as build.mjs does
	}
	inputs = append(inputs, "build.mjs", "package-lock.json")
	sum := sha256.New()
	for _, f := range inputs {
		data, err := os.ReadFile(filepath.Join("web", filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		sum.Write([]byte(f + "\x00"))
		sum.Write(data)
		sum.Write([]byte{0})
	}
	return hex.EncodeToString(sum.Sum(nil))
}
