package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "test-token"

// fakeExecutor runs commands against the real store: "ok" succeeds after
// one progress message, "slow" times out, "boom" fails.
type fakeExecutor struct {
	st       *store.Store
	mu       sync.Mutex
	timeouts []time.Duration
}

func (f *fakeExecutor) Execute(ctx context.Context, deviceID string, req store.ExecutionRequest, timeout time.Duration) (store.Execution, error) {
	f.mu.Lock()
	f.timeouts = append(f.timeouts, timeout)
	f.mu.Unlock()
	if req.Name == "boom" {
		return store.Execution{}, errors.New("broker unreachable at mqtt://secret-host")
	}
	e, err := f.st.CreateExecution(ctx, deviceID, req)
	if err != nil {
		return e, err
	}
	switch req.Name {
	case "slow":
		return f.st.SetExecutionState(ctx, e.ID, store.ExecutionTimeout)
	default:
		if _, err := f.st.AddExecutionResponse(ctx, e.ID, store.ExecutionResponse{
			State: store.ResponseInProgress, Payload: json.RawMessage(`{"message":"halfway"}`)}); err != nil {
			return e, err
		}
		return f.st.AddExecutionResponse(ctx, e.ID, store.ExecutionResponse{
			State: store.ResponseSucceeded, Payload: json.RawMessage(`{"done":true}`)})
	}
}

func (f *fakeExecutor) lastTimeout() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.timeouts[len(f.timeouts)-1]
}

// fakeProvisioner hands out password configs; MQTTS fails.
type fakeProvisioner struct{ st *store.Store }

func (f fakeProvisioner) GenerateConfig(ctx context.Context, deviceID string, p commconfig.Protocol) (*commconfig.Config, error) {
	d, err := f.st.GetDevice(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	if p == commconfig.ProtocolMQTTS {
		return nil, errors.New("ca key at /secret/path unreadable")
	}
	return &commconfig.Config{
		Version: commconfig.Version3, HardwareID: d.HardwareID, ChannelID: d.ChannelID,
		Host: "127.0.0.1", Port: 1883, Protocol: p, Username: d.HardwareID, Password: "s3cret",
	}, nil
}

// fakeStreams hands out channels the test feeds.
type fakeStreams struct {
	mu        sync.Mutex
	subs      map[string]chan StreamEvent // "device/kind"
	cancelled map[string]int
	ready     chan string
}

func newFakeStreams() *fakeStreams {
	return &fakeStreams{subs: map[string]chan StreamEvent{}, cancelled: map[string]int{}, ready: make(chan string, 8)}
}

func (f *fakeStreams) Subscribe(deviceID, kind string) (<-chan StreamEvent, func()) {
	key := deviceID + "/" + kind
	ch := make(chan StreamEvent, 8)
	f.mu.Lock()
	f.subs[key] = ch
	f.mu.Unlock()
	f.ready <- key
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.cancelled[key]++
	}
}

func (f *fakeStreams) sub(key string) chan StreamEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs[key]
}

func (f *fakeStreams) cancels(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancelled[key]
}

type env struct {
	t       *testing.T
	st      *store.Store
	exec    *fakeExecutor
	streams *fakeStreams
	srv     *httptest.Server
	now     time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), store.Options{PasswordIterations: 1000})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, exec: &fakeExecutor{st: st}, streams: newFakeStreams(),
		now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	e.srv = httptest.NewServer(New(Config{
		Token: token, Store: st, Executor: e.exec, Provisioner: fakeProvisioner{st}, Streams: e.streams,
		DefaultCommandTimeout: 7 * time.Second, Now: func() time.Time { return e.now },
	}))
	t.Cleanup(func() {
		e.srv.Close()
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// do sends a request with the token and returns the status and body.
func (e *env) do(method, path, body string) (int, []byte) {
	e.t.Helper()
	return e.doWith(method, path, body, map[string]string{AuthHeader: token})
}

func (e *env) doWith(method, path, body string, headers map[string]string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" && ct != "application/zip" && !strings.HasPrefix(ct, "text/csv") {
		e.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, data
}

// provision creates a device through the API and returns its id.
func (e *env) provision(name, slug string) string {
	e.t.Helper()
	code, body := e.do("POST", "/v3/provisioning/standalone", `{"name":"`+name+`","slug":"`+slug+`"}`)
	if code != http.StatusOK {
		e.t.Fatalf("provision: %d %s", code, body)
	}
	var out struct {
		DeviceID string `json:"device_id"`
	}
	mustUnmarshal(e.t, body, &out)
	if out.DeviceID == "" {
		e.t.Fatalf("provision: no device_id in %s", body)
	}
	return out.DeviceID
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("unmarshal %s: %v", data, err)
	}
}

type errorBody struct {
	Errors []struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"errors"`
}

// errorCase is one request expected to fail.
type errorCase struct {
	name, method, path, body string
	status                   int
	code                     string
	// contains is a substring of the message, when set.
	contains string
}

func (e *env) runErrorCases(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(tc.method, tc.path, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			checkError(t, body, tc.code, tc.contains)
		})
	}
}

func checkError(t *testing.T, body []byte, code, contains string) errorBody {
	t.Helper()
	var eb errorBody
	mustUnmarshal(t, body, &eb)
	if len(eb.Errors) != 1 {
		t.Fatalf("want one error, got %s", body)
	}
	if eb.Errors[0].Code != code {
		t.Errorf("code %q, want %q (%s)", eb.Errors[0].Code, code, body)
	}
	if !strings.Contains(eb.Errors[0].Message, contains) {
		t.Errorf("message %q does not contain %q", eb.Errors[0].Message, contains)
	}
	if eb.Errors[0].Details == nil {
		t.Errorf("details is not an object: %s", body)
	}
	return eb
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name    string
		path    string
		headers map[string]string
		status  int
	}{
		{"no token", "/v3/devices", nil, 401},
		{"wrong token", "/v3/devices", map[string]string{AuthHeader: "test-tokem"}, 401},
		{"token prefix", "/v3/devices", map[string]string{AuthHeader: "test"}, 401},
		{"query token without upgrade", "/v3/devices?token=" + token, nil, 401},
		{"right token", "/v3/devices", map[string]string{AuthHeader: token}, 200},
		{"unknown path without token", "/nope", nil, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.doWith("GET", tc.path, "", tc.headers)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			if tc.status == 401 {
				checkError(t, body, "unauthorized", AuthHeader)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t)
	e.runErrorCases(t, []errorCase{
		{name: "unknown path", method: "GET", path: "/v3/nothing", status: 404, code: "not_found"},
		{name: "wrong method", method: "PUT", path: "/v3/devices", status: 405, code: "method_not_allowed", contains: "GET"},
	})
}

func TestProvisionStandalone(t *testing.T) {
	e := newEnv(t)
	id := e.provision("Inverter 1", "inverter-1")
	d, err := e.st.GetDevice(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "Inverter 1" || d.Slug != "inverter-1" || d.ChannelID != "primary" || !strings.HasPrefix(d.HardwareID, "EDK") {
		t.Errorf("stored device %+v", d)
	}

	t.Run("slug made from name, site_id accepted", func(t *testing.T) {
		code, body := e.do("POST", "/v3/provisioning/standalone", `{"name":"Fuel Cell #2","slug":null,"site_id":null}`)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var out struct {
			DeviceID string `json:"device_id"`
		}
		mustUnmarshal(t, body, &out)
		d, err := e.st.GetDevice(context.Background(), out.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(d.Slug, "fuel-cell-2-") {
			t.Errorf("slug %q", d.Slug)
		}
	})

	huge := `{"name":"` + strings.Repeat("x", MaxBodyBytes+10) + `"}`
	e.runErrorCases(t, []errorCase{
		{name: "missing name", method: "POST", path: "/v3/provisioning/standalone", body: `{"slug":"a"}`, status: 422, code: "invalid", contains: "name"},
		{name: "blank name", method: "POST", path: "/v3/provisioning/standalone", body: `{"name":"  "}`, status: 422, code: "invalid", contains: "name"},
		{name: "bad slug", method: "POST", path: "/v3/provisioning/standalone", body: `{"name":"a","slug":"a b"}`, status: 422, code: "invalid", contains: "slug"},
		{name: "slug taken", method: "POST", path: "/v3/provisioning/standalone", body: `{"name":"b","slug":"inverter-1"}`, status: 409, code: "conflict", contains: "slug"},
		{name: "unknown field", method: "POST", path: "/v3/provisioning/standalone", body: `{"name":"a","colour":"red"}`, status: 400, code: "bad_request", contains: `"colour"`},
		{name: "bad JSON", method: "POST", path: "/v3/provisioning/standalone", body: `{"name":`, status: 400, code: "bad_request", contains: "not valid JSON"},
		{name: "syntax error", method: "POST", path: "/v3/provisioning/standalone", body: `{"name" "a"}`, status: 400, code: "bad_request", contains: "not valid JSON"},
		{name: "empty body", method: "POST", path: "/v3/provisioning/standalone", status: 400, code: "bad_request", contains: "empty"},
		{name: "not an object", method: "POST", path: "/v3/provisioning/standalone", body: `[1]`, status: 400, code: "bad_request", contains: "object"},
		{name: "wrong type", method: "POST", path: "/v3/provisioning/standalone", body: `{"name":5}`, status: 400, code: "bad_request", contains: `"name" must be a string`},
		{name: "trailing data", method: "POST", path: "/v3/provisioning/standalone", body: `{"name":"a"} {}`, status: 400, code: "bad_request", contains: "trailing"},
		{name: "huge body", method: "POST", path: "/v3/provisioning/standalone", body: huge, status: 413, code: "body_too_large"},
	})
}

type deviceOut struct {
	Device struct {
		ID           string         `json:"id"`
		BlueprintID  *string        `json:"blueprint_id"`
		Name         string         `json:"name"`
		SiteID       *string        `json:"site_id"`
		Slug         string         `json:"slug"`
		Type         string         `json:"type"`
		UpdatedAt    string         `json:"updated_at"`
		Properties   map[string]any `json:"properties"`
		Connectivity *struct {
			Status string `json:"status"`
		} `json:"connectivity"`
		Manifest any `json:"manifest"`
	} `json:"device"`
}

func TestDevices(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := []string{e.provision("one", "one"), e.provision("two", "two"), e.provision("three", "three")}

	t.Run("list pages", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"", ids},
			{"?limit=2", ids[:2]},
			{"?limit=2&offset=2", ids[2:]},
			{"?offset=5", nil},
		} {
			code, body := e.do("GET", "/v3/devices"+tc.query, "")
			if code != 200 {
				t.Fatalf("%s: %d %s", tc.query, code, body)
			}
			var out struct {
				Devices []struct {
					ID string `json:"id"`
				} `json:"devices"`
			}
			mustUnmarshal(t, body, &out)
			if out.Devices == nil {
				t.Errorf("%q: devices is null, want an array: %s", tc.query, body)
			}
			var got []string
			for _, d := range out.Devices {
				got = append(got, d.ID)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%q: got %v, want %v", tc.query, got, tc.want)
			}
		}
	})

	t.Run("get plain", func(t *testing.T) {
		code, body := e.do("GET", "/v3/devices/"+ids[0], "")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var out deviceOut
		mustUnmarshal(t, body, &out)
		d := out.Device
		if d.ID != ids[0] || d.Name != "one" || d.Slug != "one" || d.Type != "STANDALONE" ||
			d.BlueprintID == nil || d.SiteID == nil || d.Properties != nil || d.Connectivity != nil || d.Manifest != nil {
			t.Errorf("device %s", body)
		}
		if _, err := time.Parse(time.RFC3339, d.UpdatedAt); err != nil {
			t.Errorf("updated_at: %v", err)
		}
		if strings.Contains(string(body), "hardware_id") || strings.Contains(string(body), "has_password") {
			t.Errorf("store internals leak: %s", body)
		}
	})

	t.Run("get expanded", func(t *testing.T) {
		code, body := e.do("GET", "/v3/devices/"+ids[1]+"?expand=properties,connectivity,manifest", "")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var out deviceOut
		mustUnmarshal(t, body, &out)
		if out.Device.Properties == nil || len(out.Device.Properties) != 0 || out.Device.Connectivity == nil ||
			out.Device.Connectivity.Status != "UNKNOWN" || !strings.Contains(string(body), `"manifest":null`) {
			t.Errorf("before any data: %s", body)
		}
		if err := e.st.SetProperties(ctx, ids[1], e.now, map[string]json.RawMessage{"vendor": []byte(`"ACME"`)}); err != nil {
			t.Fatal(err)
		}
		if err := e.st.SetConnectivity(ctx, ids[1], true, e.now); err != nil {
			t.Fatal(err)
		}
		_, body = e.do("GET", "/v3/devices/"+ids[1]+"?expand=properties&expand=connectivity,raised_alert_names", "")
		mustUnmarshal(t, body, &out)
		if out.Device.Properties["vendor"] != "ACME" || out.Device.Connectivity.Status != "ONLINE" {
			t.Errorf("after data: %s", body)
		}
		if err := e.st.SetConnectivity(ctx, ids[1], false, e.now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		_, body = e.do("GET", "/v3/devices/"+ids[1]+"?expand=connectivity", "")
		mustUnmarshal(t, body, &out)
		if out.Device.Connectivity.Status != "OFFLINE" {
			t.Errorf("after disconnect: %s", body)
		}
	})

	t.Run("patch", func(t *testing.T) {
		code, body := e.do("PATCH", "/v3/devices/"+ids[2], `{"name":"Three","slug":"three-b"}`)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var out deviceOut
		mustUnmarshal(t, body, &out)
		if out.Device.Name != "Three" || out.Device.Slug != "three-b" {
			t.Errorf("%s", body)
		}
		code, body = e.do("PATCH", "/v3/devices/"+ids[2], `{"name":"Three again","slug":null}`)
		mustUnmarshal(t, body, &out)
		if code != 200 || out.Device.Name != "Three again" || out.Device.Slug != "three-b" {
			t.Errorf("name only: %d %s", code, body)
		}
	})

	t.Run("delete", func(t *testing.T) {
		code, body := e.do("DELETE", "/v3/devices/"+ids[0], "")
		if code != 200 || strings.TrimSpace(string(body)) != "{}" {
			t.Fatalf("%d %s", code, body)
		}
		code, _ = e.do("GET", "/v3/devices/"+ids[0], "")
		if code != 404 {
			t.Errorf("after delete: %d", code)
		}
	})

	e.runErrorCases(t, []errorCase{
		{name: "list limit not a number", method: "GET", path: "/v3/devices?limit=x", status: 400, code: "bad_request", contains: "limit"},
		{name: "list limit zero", method: "GET", path: "/v3/devices?limit=0", status: 422, code: "invalid", contains: "limit"},
		{name: "list limit too big", method: "GET", path: "/v3/devices?limit=1001", status: 422, code: "invalid", contains: "limit"},
		{name: "list offset negative", method: "GET", path: "/v3/devices?offset=-1", status: 422, code: "invalid", contains: "offset"},
		{name: "get unknown", method: "GET", path: "/v3/devices/nope", status: 404, code: "not_found", contains: "device"},
		{name: "patch unknown", method: "PATCH", path: "/v3/devices/nope", body: `{"name":"x"}`, status: 404, code: "not_found"},
		{name: "patch slug taken", method: "PATCH", path: "/v3/devices/" + ids[1], body: `{"slug":"three-b"}`, status: 409, code: "conflict", contains: "slug"},
		{name: "patch empty name", method: "PATCH", path: "/v3/devices/" + ids[1], body: `{"name":""}`, status: 422, code: "invalid", contains: "name"},
		{name: "patch bad slug", method: "PATCH", path: "/v3/devices/" + ids[1], body: `{"slug":"a/b"}`, status: 422, code: "invalid", contains: "slug"},
		{name: "patch unknown field", method: "PATCH", path: "/v3/devices/" + ids[1], body: `{"blueprint_id":"x"}`, status: 400, code: "bad_request", contains: "blueprint_id"},
		{name: "delete unknown", method: "DELETE", path: "/v3/devices/nope", status: 404, code: "not_found"},
	})
}

func TestGenerateConfig(t *testing.T) {
	e := newEnv(t)
	id := e.provision("dev", "dev")
	code, body := e.do("POST", "/v3/devices/"+id+"/generate_config", `{"protocol":"MQTT"}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var out struct {
		Config map[string]any `json:"config"`
		Blob   string         `json:"blob"`
	}
	mustUnmarshal(t, body, &out)
	cfg, err := commconfig.Parse(out.Blob)
	if err != nil {
		t.Fatalf("blob does not parse: %v", err)
	}
	d, _ := e.st.GetDevice(context.Background(), id)
	if cfg.HardwareID != d.HardwareID || cfg.ChannelID != "primary" || cfg.Password != "s3cret" {
		t.Errorf("blob config %v", cfg)
	}
	for _, k := range []string{"hardware_id", "channel_id", "mqtt_host", "mqtt_port", "mqtt_protocol",
		"mqtt_credentials", "time_sync_protocol", "time_sync_host", "time_sync_port"} {
		if _, ok := out.Config[k]; !ok {
			t.Errorf("config lacks %q: %s", k, body)
		}
	}
	if out.Config["mqtt_protocol"] != "MQTT" || out.Config["time_sync_protocol"] != "HTTP" {
		t.Errorf("config %v", out.Config)
	}
	// The "config" object is the blob's JSON, plus time_sync_*.
	fromObj, err := json.Marshal(out.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg2, err := commconfig.ParseJSON(fromObj)
	if err != nil || cfg2.Password != cfg.Password || cfg2.HardwareID != cfg.HardwareID {
		t.Errorf("config object does not parse like the blob: %v", err)
	}

	e.runErrorCases(t, []errorCase{
		{name: "bad protocol", method: "POST", path: "/v3/devices/" + id + "/generate_config", body: `{"protocol":"HTTP"}`, status: 422, code: "invalid", contains: "protocol"},
		{name: "no protocol", method: "POST", path: "/v3/devices/" + id + "/generate_config", body: `{}`, status: 422, code: "invalid", contains: "protocol"},
		{name: "unknown device", method: "POST", path: "/v3/devices/nope/generate_config", body: `{"protocol":"MQTT"}`, status: 404, code: "not_found"},
		{name: "provisioner fails", method: "POST", path: "/v3/devices/" + id + "/generate_config", body: `{"protocol":"MQTTS"}`, status: 500, code: "internal"},
		{name: "unknown field", method: "POST", path: "/v3/devices/" + id + "/generate_config", body: `{"protocol":"MQTT","x":1}`, status: 400, code: "bad_request", contains: `"x"`},
	})
	_, body = e.do("POST", "/v3/devices/"+id+"/generate_config", `{"protocol":"MQTTS"}`)
	if strings.Contains(string(body), "secret") {
		t.Errorf("500 leaks the cause: %s", body)
	}
}

type executionOut struct {
	ID        string `json:"id"`
	DeviceID  string `json:"device_id"`
	State     string `json:"state"`
	CreatedAt string `json:"created_at"`
	Request   struct {
		Name         string         `json:"name"`
		Arguments    map[string]any `json:"arguments"`
		ManifestName string         `json:"manifest_name"`
	} `json:"request"`
	Response *struct {
		State      string         `json:"state"`
		Payload    map[string]any `json:"payload"`
		ReceivedAt string         `json:"received_at"`
	} `json:"response"`
	Log *[]struct {
		State   string         `json:"state"`
		Payload map[string]any `json:"payload"`
	} `json:"log"`
}

func TestExecuteCommand(t *testing.T) {
	e := newEnv(t)
	id := e.provision("dev", "dev")
	other := e.provision("other", "other")
	path := "/v3/devices/" + id + "/execute_command"

	code, body := e.do("POST", path+"?expand=log", `{"name":"ok","arguments":{"power":5}}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var out struct {
		Execution executionOut `json:"execution"`
	}
	mustUnmarshal(t, body, &out)
	x := out.Execution
	if x.ID == "" || x.DeviceID != id || x.State != "SUCCESS" || x.Request.Name != "ok" || x.Request.Arguments["power"] != 5.0 ||
		x.Response == nil || x.Response.State != "SUCCEEDED" || x.Response.Payload["done"] != true ||
		x.Log == nil || len(*x.Log) != 2 || (*x.Log)[0].State != "IN_PROGRESS" {
		t.Errorf("execution %s", body)
	}
	for _, ts := range []string{x.CreatedAt, x.Response.ReceivedAt} {
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("time %q: %v", ts, err)
		}
	}
	if got := e.exec.lastTimeout(); got != 7*time.Second {
		t.Errorf("default timeout %v", got)
	}
	okID := x.ID

	t.Run("without expand the log is null", func(t *testing.T) {
		code, body := e.do("POST", path, `{"name":"ok"}`)
		if code != 200 || !strings.Contains(string(body), `"log":null`) || !strings.Contains(string(body), `"arguments":{}`) {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("timeout is a result", func(t *testing.T) {
		code, body := e.do("POST", path, `{"name":"slow","arguments":null,"timeout":1.5}`)
		var out struct {
			Execution executionOut `json:"execution"`
		}
		mustUnmarshal(t, body, &out)
		if code != 200 || out.Execution.State != "TIMEOUT" || out.Execution.Response != nil {
			t.Errorf("%d %s", code, body)
		}
		if got := e.exec.lastTimeout(); got != 1500*time.Millisecond {
			t.Errorf("timeout %v", got)
		}
	})
	t.Run("executor failure hides the cause", func(t *testing.T) {
		code, body := e.do("POST", path, `{"name":"boom"}`)
		if code != 500 || strings.Contains(string(body), "secret") {
			t.Errorf("%d %s", code, body)
		}
	})

	t.Run("get", func(t *testing.T) {
		code, body := e.do("GET", "/v3/devices/"+id+"/command_executions/"+okID+"?expand=log", "")
		var out struct {
			Execution executionOut `json:"execution"`
		}
		mustUnmarshal(t, body, &out)
		if code != 200 || out.Execution.ID != okID || out.Execution.Log == nil || len(*out.Execution.Log) != 2 {
			t.Errorf("%d %s", code, body)
		}
	})

	t.Run("list", func(t *testing.T) {
		// Three executions so far, oldest first: ok, ok, slow (boom stored none).
		for _, tc := range []struct {
			query string
			want  []string // states
			names []string
		}{
			{"", []string{"TIMEOUT", "SUCCESS", "SUCCESS"}, nil},
			{"?limit=1", []string{"TIMEOUT"}, nil},
			{"?limit=1&offset=1", []string{"SUCCESS"}, nil},
			{"?order=CREATED_AT_ASC&limit=2", []string{"SUCCESS", "SUCCESS"}, nil},
			{"?order=CREATED_AT_ASC&offset=2", []string{"TIMEOUT"}, nil},
			{"?state.in=TIMEOUT,ERROR", []string{"TIMEOUT"}, nil},
			{"?name.in=ok", []string{"SUCCESS", "SUCCESS"}, nil},
			{"?created_at.lt=2000-01-01T00:00:00Z", nil, nil},
			// As the Python SDK sends datetime.isoformat(): with an offset,
			// and without a zone (a naive datetime, taken as UTC).
			{"?created_at.gte=2000-01-01T00:00:00.000001%2B00:00", []string{"TIMEOUT", "SUCCESS", "SUCCESS"}, nil},
			{"?created_at.gte=2000-01-01T00:00:00", []string{"TIMEOUT", "SUCCESS", "SUCCESS"}, nil},
			{"?created_at.lt=2000-01-01T00:00:00", nil, nil},
		} {
			code, body := e.do("GET", "/v3/devices/"+id+"/command_executions"+tc.query, "")
			if code != 200 {
				t.Fatalf("%s: %d %s", tc.query, code, body)
			}
			var out struct {
				Executions []executionOut `json:"executions"`
			}
			mustUnmarshal(t, body, &out)
			if out.Executions == nil {
				t.Errorf("%q: executions is null: %s", tc.query, body)
			}
			var got []string
			for _, x := range out.Executions {
				got = append(got, x.State)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%q: %v, want %v", tc.query, got, tc.want)
			}
		}
	})

	e.runErrorCases(t, []errorCase{
		{name: "no name", method: "POST", path: path, body: `{"arguments":{}}`, status: 422, code: "invalid", contains: "name"},
		{name: "arguments not an object", method: "POST", path: path, body: `{"name":"ok","arguments":[1]}`, status: 422, code: "invalid", contains: "arguments"},
		{name: "timeout zero", method: "POST", path: path, body: `{"name":"ok","timeout":0}`, status: 422, code: "invalid", contains: "timeout"},
		{name: "timeout too long", method: "POST", path: path, body: `{"name":"ok","timeout":601}`, status: 422, code: "invalid", contains: "timeout"},
		{name: "timeout a string", method: "POST", path: path, body: `{"name":"ok","timeout":"5s"}`, status: 400, code: "bad_request", contains: "timeout"},
		{name: "unknown field", method: "POST", path: path, body: `{"name":"ok","args":{}}`, status: 400, code: "bad_request", contains: `"args"`},
		{name: "unknown device", method: "POST", path: "/v3/devices/nope/execute_command", body: `{"name":"ok"}`, status: 404, code: "not_found"},
		{name: "get unknown execution", method: "GET", path: "/v3/devices/" + id + "/command_executions/nope", status: 404, code: "not_found", contains: "execution"},
		{name: "get execution of another device", method: "GET", path: "/v3/devices/" + other + "/command_executions/" + okID, status: 404, code: "not_found"},
		{name: "list unknown device", method: "GET", path: "/v3/devices/nope/command_executions", status: 404, code: "not_found"},
		{name: "list bad order", method: "GET", path: "/v3/devices/" + id + "/command_executions?order=UP", status: 422, code: "invalid", contains: "order"},
		{name: "list bad time", method: "GET", path: "/v3/devices/" + id + "/command_executions?created_at.gte=yesterday", status: 400, code: "bad_request", contains: "created_at.gte"},
		{name: "list bad limit", method: "GET", path: "/v3/devices/" + id + "/command_executions?limit=-1", status: 422, code: "invalid", contains: "limit"},
	})
}

func TestNotAvailable(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := New(Config{Token: token, Store: st})
	for _, tc := range []struct{ name, path, body string }{
		{"execute", "/v3/devices/x/execute_command", `{"name":"a"}`},
		{"generate", "/v3/devices/x/generate_config", `{"protocol":"MQTT"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", tc.path, bytes.NewBufferString(tc.body))
			req.Header.Set(AuthHeader, token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 501 {
				t.Errorf("%d %s", rec.Code, rec.Body)
			}
		})
	}
}

func TestNewPanicsWithoutTokenOrStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{{"no token", Config{Store: &store.Store{}}}, {"no store", Config{Token: "t"}}} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			New(tc.cfg)
		})
	}
}
