package api

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/hub/store"
)

// Start makes fakeExecutor a Starter: the execution is stored NEW and left
// so, which is what the caller sees right after starting it.
func (f *fakeExecutor) Start(ctx context.Context, deviceID string, req store.ExecutionRequest, timeout time.Duration) (store.Execution, error) {
	return f.st.CreateExecution(ctx, deviceID, req)
}

func (e *env) site() store.Site {
	e.t.Helper()
	st, err := e.st.Site(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func TestSites(t *testing.T) {
	e := newEnv(t)
	site := e.site()
	for _, path := range []string{"/v3/sites", "/v3/users/me/sites", "/v3/sites/users/me/sites"} {
		code, body := e.do("GET", path+"?limit=50&offset=0", "")
		var out struct {
			Sites      []siteJSON `json:"sites"`
			TotalCount *int       `json:"total_count"`
		}
		mustUnmarshal(t, body, &out)
		if code != 200 || out.TotalCount == nil || *out.TotalCount != 1 || len(out.Sites) != 1 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		want := siteJSON{ID: site.ID, Name: site.Name, Timezone: "UTC", Version: "V3", AuthorizedRole: "OWNER"}
		if out.Sites[0] != want {
			t.Errorf("%s: site %+v, want %+v", path, out.Sites[0], want)
		}
		code, body = e.do("GET", path+"?offset=1", "")
		if code != 200 || !strings.Contains(string(body), `"sites":[]`) || !strings.Contains(string(body), `"total_count":1`) {
			t.Errorf("%s past the end: %d %s", path, code, body)
		}
	}
	for _, path := range []string{"/v3/site", "/v3/sites/" + site.ID} {
		code, body := e.do("GET", path, "")
		var out struct {
			Site map[string]any `json:"site"`
		}
		mustUnmarshal(t, body, &out)
		if code != 200 || out.Site["id"] != site.ID || out.Site["authorized_role"] != "OWNER" || out.Site["version"] != "V3" {
			t.Errorf("%s: %d %s", path, code, body)
		}
		if _, ok := out.Site["location"]; !ok {
			t.Errorf("%s: no location key: %s", path, body)
		}
	}
	id := e.provision("a", "a")
	code, body := e.do("GET", "/v3/sites/"+site.ID+"/devices", "")
	if code != 200 || !strings.Contains(string(body), id) || !strings.Contains(string(body), `"total_count":1`) {
		t.Errorf("site devices: %d %s", code, body)
	}
	e.runErrorCases(t, []errorCase{
		{name: "unknown site", method: "GET", path: "/v3/sites/nope", status: 404, code: "not_found", contains: "site"},
		{name: "devices of an unknown site", method: "GET", path: "/v3/sites/nope/devices", status: 404, code: "not_found", contains: "site"},
		{name: "bad offset", method: "GET", path: "/v3/sites?offset=-1", status: 422, code: "invalid", contains: "offset"},
		{name: "create on an unknown site", method: "POST", path: "/v3/provisioning/standalone",
			body: `{"name":"x","site_id":"nope"}`, status: 404, code: "not_found", contains: "site"},
	})
	code, body = e.do("POST", "/v3/provisioning/standalone", `{"name":"on the site","site_id":"`+site.ID+`"}`)
	if code != 200 {
		t.Errorf("create on the hub's site: %d %s", code, body)
	}
}

func TestDevicesAsEnapter(t *testing.T) {
	e := newEnv(t)
	site := e.site()
	ids := []string{e.provision("One", "one"), e.provision("Two", "two"), e.provision("Three", "three")}

	code, body := e.do("GET", "/v3/devices?limit=2&offset=0", "")
	var page struct {
		Devices    []map[string]any `json:"devices"`
		TotalCount int              `json:"total_count"`
	}
	mustUnmarshal(t, body, &page)
	if code != 200 || page.TotalCount != 3 || len(page.Devices) != 2 {
		t.Fatalf("page 1: %d %s", code, body)
	}
	for _, d := range page.Devices {
		if d["authorized_role"] != "OWNER" || d["site_id"] != site.ID || d["type"] != "STANDALONE" {
			t.Errorf("device %v", d)
		}
	}
	code, body = e.do("GET", "/v3/devices?limit=2&offset=2", "")
	mustUnmarshal(t, body, &page)
	if code != 200 || page.TotalCount != 3 || len(page.Devices) != 1 {
		t.Fatalf("page 2: %d %s", code, body)
	}

	// Slugs work wherever an id does.
	code, body = e.do("GET", "/v3/devices/two?expand=communication,raised_alert_names", "")
	var got struct {
		Device deviceJSON `json:"device"`
	}
	mustUnmarshal(t, body, &got)
	if code != 200 || got.Device.ID != ids[1] {
		t.Fatalf("by slug: %d %s", code, body)
	}
	c := got.Device.Communication
	if c == nil || c.Type != "MQTT_V1_PLAINTEXT" || c.ChannelID != "primary" || !strings.HasPrefix(c.HardwareID, "EDK") || c.UpstreamID != nil {
		t.Errorf("communication %s", body)
	}
	if got.Device.RaisedAlertNames == nil || len(*got.Device.RaisedAlertNames) != 0 {
		t.Errorf("raised_alert_names before any telemetry: %s", body)
	}
	if got.Device.Site != nil {
		t.Errorf("a site not asked for: %s", body)
	}
	// expand=site (enapter3 device list/get --expand site) nests the site.
	for _, path := range []string{"/v3/devices/two?expand=site", "/v3/devices?expand=connectivity,site"} {
		code, body = e.do("GET", path, "")
		if code != 200 || !strings.Contains(string(body), `"site":{"id":"`+site.ID+`","name":"`+site.Name+`","timezone":"UTC","version":"V3","authorized_role":"OWNER","location":null}`) {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	if _, err := e.st.AppendTelemetry(context.Background(), []store.Sample{{DeviceID: ids[1], Time: e.now,
		Values: map[string]json.RawMessage{"voltage": json.RawMessage("230")}, Alerts: []string{"grid_overvoltage"}}}); err != nil {
		t.Fatal(err)
	}
	code, body = e.do("GET", "/v3/telemetry/latest?devices%5Btwo%5D=voltage", "")
	if code != 200 || !strings.Contains(string(body), `"two":{"voltage":{"timestamp":`) {
		t.Errorf("latest telemetry by slug: %d %s", code, body)
	}
	code, body = e.do("GET", "/v3/telemetry?device=two&attributes=voltage&from=2025-06-01T11:00:00Z&to=2025-06-01T13:00:00Z", "")
	if code != 200 || !strings.Contains(string(body), `"device_id":"`+ids[1]+`"`) || !strings.Contains(string(body), `"value":230`) {
		t.Errorf("time series by slug: %d %s", code, body)
	}
	code, body = e.do("GET", "/v3/devices/"+ids[1]+"?expand=raised_alert_names", "")
	if code != 200 || !strings.Contains(string(body), `"raised_alert_names":["grid_overvoltage"]`) {
		t.Errorf("raised_alert_names: %d %s", code, body)
	}
	if err := e.st.SetCertFingerprint(context.Background(), ids[2], strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	code, body = e.do("GET", "/v3/devices/three?expand=communication", "")
	if code != 200 || !strings.Contains(string(body), `"type":"MQTT_V1_TLS"`) {
		t.Errorf("TLS device: %d %s", code, body)
	}
	code, body = e.do("PATCH", "/v3/devices/one", `{"name":"One again"}`)
	if code != 200 || !strings.Contains(string(body), `"name":"One again"`) {
		t.Errorf("patch by slug: %d %s", code, body)
	}
	code, body = e.do("DELETE", "/v3/devices/three", "")
	if code != 200 || strings.TrimSpace(string(body)) != "{}" {
		t.Errorf("delete by slug: %d %s", code, body)
	}
	e.runErrorCases(t, []errorCase{
		{name: "deleted", method: "DELETE", path: "/v3/devices/three", status: 404, code: "not_found", contains: "device"},
		{name: "unknown slug", method: "GET", path: "/v3/devices/no-such-slug", status: 404, code: "not_found", contains: "device"},
	})
}

// zipOf builds a zip of name → content, deflated.
func zipOf(t *testing.T, files map[string]string) string {
	t.Helper()
	return zipWith(t, files, zip.Deflate)
}

// zipWith builds a zip of name → content with the given method.
func zipWith(t *testing.T, files map[string]string, method uint16) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range files {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func inverterManifest(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../sim/inverter/manifest.yml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

const badManifest = "blueprint_spec: device/3.0\ntelemetry:\n  power:\n    type: nonsense\ncommands:\n  go:\n    arguments:\n      x:\n        type: wrong\n"

func TestBlueprints(t *testing.T) {
	e := newEnv(t)
	good := zipOf(t, map[string]string{"manifest.yml": inverterManifest(t), "README.md": "hello"})

	code, body := e.do("POST", "/v3/blueprints/upload", good)
	var up struct {
		Blueprint blueprintJSON `json:"blueprint"`
	}
	mustUnmarshal(t, body, &up)
	if code != 200 || up.Blueprint.ID == "" {
		t.Fatalf("upload: %d %s", code, body)
	}
	if _, err := time.Parse(time.RFC3339, up.Blueprint.CreatedAt); err != nil {
		t.Errorf("created_at %q: %v", up.Blueprint.CreatedAt, err)
	}
	bid := up.Blueprint.ID
	code, body = e.do("GET", "/v3/blueprints/"+bid, "")
	if code != 200 || !strings.Contains(string(body), bid) {
		t.Errorf("get: %d %s", code, body)
	}
	for _, q := range []string{"", "?view=ORIGINAL", "?view=COMPILED"} {
		code, body = e.do("GET", "/v3/blueprints/"+bid+"/zip"+q, "")
		if code != 200 || string(body) != good {
			t.Errorf("zip%s: %d, %d bytes, want the %d uploaded", q, code, len(body), len(good))
		}
	}
	// A zipped folder (everything under one directory) is fine too.
	code, body = e.do("POST", "/v3/blueprints/upload", zipOf(t, map[string]string{"inverter/manifest.yml": inverterManifest(t),
		"__MACOSX/inverter/._manifest.yml": "fork"}))
	if code != 200 {
		t.Errorf("zipped folder: %d %s", code, body)
	}
	code, body = e.do("POST", "/v3/blueprints/upload", zipOf(t, map[string]string{"a/manifest.yml": inverterManifest(t), "b/x": ""}))
	if code != 422 || !strings.Contains(string(body), "no manifest.yml at its root") {
		t.Errorf("two folders: %d %s", code, body)
	}

	// Validation lists every problem and stores nothing.
	code, body = e.do("POST", "/v3/blueprints/validate", good)
	if code != 200 || strings.TrimSpace(string(body)) != `{"validation_errors":[],"validation_warnings":[]}` {
		t.Errorf("validate good: %d %s", code, body)
	}
	code, body = e.do("POST", "/v3/blueprints/validate", zipOf(t, map[string]string{"manifest.yml": badManifest}))
	var v struct {
		ValidationErrors []string `json:"validation_errors"`
	}
	mustUnmarshal(t, body, &v)
	if code != 200 || len(v.ValidationErrors) < 2 {
		t.Errorf("validate bad: %d %s", code, body)
	}
	code, body = e.do("POST", "/v3/blueprints/validate", "not a zip")
	mustUnmarshal(t, body, &v)
	if code != 200 || len(v.ValidationErrors) != 1 || !strings.Contains(v.ValidationErrors[0], "zip") {
		t.Errorf("validate not a zip: %d %s", code, body)
	}

	// Assigned to several devices by Enapter's JSON body.
	d1, d2 := e.provision("one", "one"), e.provision("two", "two")
	for _, d := range []string{d1, "two"} {
		code, body = e.doWith("POST", "/v3/devices/"+d+"/assign_blueprint", `{"blueprint_id":"`+bid+`"}`,
			map[string]string{AuthHeader: token, "Content-Type": "application/json"})
		var out struct {
			Device deviceJSON `json:"device"`
		}
		mustUnmarshal(t, body, &out)
		if code != 200 || out.Device.BlueprintID != bid || !strings.Contains(string(out.Device.Manifest), "SimInverter") {
			t.Fatalf("assign to %s: %d %s", d, code, body)
		}
	}
	// The manifest is enforced on commands of both.
	for _, d := range []string{d1, d2} {
		code, body = e.do("POST", "/v3/devices/"+d+"/execute_command", `{"name":"no_such_command"}`)
		if code != 422 {
			t.Errorf("command after assign on %s: %d %s", d, code, body)
		}
	}
	// The YAML body still works and clears blueprint_id.
	code, body = e.do("POST", "/v3/devices/"+d1+"/assign_blueprint", inverterManifest(t))
	if code != 200 || !strings.Contains(string(body), `"blueprint_id":""`) {
		t.Errorf("YAML body: %d %s", code, body)
	}

	big := zipOf(t, map[string]string{"manifest.yml": inverterManifest(t)}) + strings.Repeat("x", MaxBlueprintBytes)
	jsonCT := func(c errorCase) errorCase { return c }
	e.runErrorCases(t, []errorCase{
		{name: "upload not a zip", method: "POST", path: "/v3/blueprints/upload", body: "PK but not really", status: 422, code: "invalid_blueprint", contains: "zip"},
		{name: "upload empty", method: "POST", path: "/v3/blueprints/upload", status: 422, code: "invalid_blueprint", contains: "empty"},
		{name: "upload without manifest", method: "POST", path: "/v3/blueprints/upload", body: zipOf(t, map[string]string{"main.lua": "x"}), status: 422, code: "invalid_blueprint", contains: "manifest.yml"},
		{name: "upload path escaping", method: "POST", path: "/v3/blueprints/upload", body: zipOf(t, map[string]string{"manifest.yml": inverterManifest(t), "../evil": "x"}), status: 422, code: "invalid_blueprint", contains: "relative path"},
		{name: "upload bad manifest", method: "POST", path: "/v3/blueprints/upload", body: zipOf(t, map[string]string{"manifest.yml": badManifest}), status: 422, code: "invalid_blueprint", contains: "more problems"},
		{name: "upload oversize", method: "POST", path: "/v3/blueprints/upload", body: big, status: 413, code: "body_too_large"},
		{name: "validate oversize", method: "POST", path: "/v3/blueprints/validate", body: big, status: 413, code: "body_too_large"},
		{name: "get unknown", method: "GET", path: "/v3/blueprints/nope", status: 404, code: "not_found", contains: "blueprint"},
		{name: "zip unknown", method: "GET", path: "/v3/blueprints/nope/zip", status: 404, code: "not_found", contains: "blueprint"},
		{name: "zip bad view", method: "GET", path: "/v3/blueprints/" + bid + "/zip?view=NICE", status: 422, code: "invalid", contains: "view"},
		jsonCT(errorCase{name: "assign to unknown device", method: "POST", path: "/v3/devices/nope/assign_blueprint", body: `{"blueprint_id":"` + bid + `"}`, status: 404, code: "not_found", contains: "device"}),
	})
	// The upload's details list every problem.
	code, body = e.do("POST", "/v3/blueprints/upload", zipOf(t, map[string]string{"manifest.yml": badManifest}))
	eb := checkError(t, body, "invalid_blueprint", "")
	if errs, _ := eb.Errors[0].Details["validation_errors"].([]any); code != 422 || len(errs) < 2 {
		t.Errorf("upload problems: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		contains   string
	}{
		{"unknown blueprint", `{"blueprint_id":"nope"}`, 404, "not_found", "blueprint"},
		{"empty blueprint id", `{"blueprint_id":""}`, 422, "invalid", "blueprint_id"},
		{"blueprint id not a string", `{"blueprint_id":5}`, 400, "bad_request", "blueprint_id"},
		{"unknown field", `{"blueprint":"x"}`, 400, "bad_request", "blueprint"},
		{"nothing", `{}`, 422, "invalid", "blueprint_id"},
		{"both", `{"blueprint_id":"` + bid + `","manifest":"x"}`, 422, "invalid", "not both"},
		{"bad JSON", `{"blueprint_id":`, 400, "bad_request", "JSON"},
	} {
		t.Run("assign "+tc.name, func(t *testing.T) {
			code, body := e.doWith("POST", "/v3/devices/"+d1+"/assign_blueprint", tc.body,
				map[string]string{AuthHeader: token, "Content-Type": "application/json"})
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			checkError(t, body, tc.code, tc.contains)
		})
	}
}

func TestPlainLogsAndTelemetry(t *testing.T) {
	e := newEnv(t)
	id := e.provision("a", "a")
	ctx := context.Background()
	var entries []store.LogEntry
	for i, sev := range []string{"info", "error", "info"} {
		entries = append(entries, store.LogEntry{DeviceID: id, Time: e.now.Add(time.Duration(i) * time.Minute),
			Severity: sev, Message: fmt.Sprintf("m%d", i), Persist: i == 0})
	}
	if _, err := e.st.AppendLogs(ctx, entries); err != nil {
		t.Fatal(err)
	}
	type logs struct {
		Logs       []logJSON `json:"logs"`
		TotalCount int       `json:"total_count"`
	}
	get := func(q string) logs {
		t.Helper()
		code, body := e.do("GET", "/v3/devices/a/logs"+q, "")
		if code != 200 {
			t.Fatalf("logs%s: %d %s", q, code, body)
		}
		var out logs
		mustUnmarshal(t, body, &out)
		return out
	}
	all := get("")
	if all.TotalCount != 3 || len(all.Logs) != 3 || all.Logs[0].Message != "m0" ||
		all.Logs[0].Timestamp != "2025-06-01T12:00:00.000Z" || all.Logs[0].ReceivedAt != "2025-06-01T12:00:00.000Z" || !all.Logs[0].Persist {
		t.Errorf("all: %+v", all)
	}
	if p := get("?order=RECEIVED_AT_DESC&limit=1&offset=1"); p.TotalCount != 3 || len(p.Logs) != 1 || p.Logs[0].Message != "m1" {
		t.Errorf("desc page: %+v", p)
	}
	if p := get("?severity=error"); p.TotalCount != 1 || p.Logs[0].Message != "m1" {
		t.Errorf("severity: %+v", p)
	}
	if p := get("?show=PERSISTED_ONLY"); p.TotalCount != 1 || p.Logs[0].Message != "m0" {
		t.Errorf("persisted: %+v", p)
	}
	if p := get("?show=TEMPORARY_ONLY"); p.TotalCount != 2 {
		t.Errorf("temporary: %+v", p)
	}
	if p := get("?received_at_from=2025-06-01T12:01:00Z&received_at_to=2025-06-01T12:02:00Z"); p.TotalCount != 1 || p.Logs[0].Message != "m1" {
		t.Errorf("range: %+v", p)
	}
	if p := get("?received_at_from=2025-06-01T12:01:00&received_at_to=2025-06-01T12:02:00"); p.TotalCount != 1 || p.Logs[0].Message != "m1" {
		t.Errorf("range without a zone (UTC): %+v", p)
	}

	code, body := e.do("GET", "/v3/devices/a/telemetry", "")
	if code != 200 || strings.TrimSpace(string(body)) != `{"device_id":"`+id+`","telemetry":{}}` {
		t.Errorf("telemetry before any: %d %s", code, body)
	}
	if _, err := e.st.AppendTelemetry(ctx, []store.Sample{{DeviceID: id, Time: e.now,
		Values: map[string]json.RawMessage{"voltage": json.RawMessage("230.5")}}}); err != nil {
		t.Fatal(err)
	}
	code, body = e.do("GET", "/v3/devices/"+id+"/telemetry", "")
	if code != 200 || !strings.Contains(string(body), fmt.Sprintf(`"voltage":{"timestamp":%d,"value":230.5}`, e.now.Unix())) {
		t.Errorf("telemetry: %d %s", code, body)
	}
	e.runErrorCases(t, []errorCase{
		{name: "logs of unknown device", method: "GET", path: "/v3/devices/nope/logs", status: 404, code: "not_found", contains: "device"},
		{name: "logs bad order", method: "GET", path: "/v3/devices/a/logs?order=SIDEWAYS", status: 422, code: "invalid", contains: "order"},
		{name: "logs bad show", method: "GET", path: "/v3/devices/a/logs?show=SOME", status: 422, code: "invalid", contains: "show"},
		{name: "logs bad time", method: "GET", path: "/v3/devices/a/logs?received_at_from=yesterday", status: 400, code: "bad_request", contains: "received_at_from"},
		{name: "logs bad limit", method: "GET", path: "/v3/devices/a/logs?limit=0", status: 422, code: "invalid", contains: "limit"},
	})
}

func TestCreateExecution(t *testing.T) {
	e := newEnv(t)
	id := e.provision("a", "a")
	code, body := e.do("POST", "/v3/devices/a/command_executions", `{"name":"ping","arguments":{"n":1}}`)
	var out struct {
		ExecutionID string `json:"execution_id"`
	}
	mustUnmarshal(t, body, &out)
	if code != 200 || out.ExecutionID == "" {
		t.Fatalf("%d %s", code, body)
	}
	code, body = e.do("GET", "/v3/devices/"+id+"/command_executions/"+out.ExecutionID, "")
	if code != 200 || !strings.Contains(string(body), `"state":"NEW"`) || !strings.Contains(string(body), `"arguments":{"n":1}`) {
		t.Errorf("get: %d %s", code, body)
	}
	e.runErrorCases(t, []errorCase{
		{name: "unknown device", method: "POST", path: "/v3/devices/nope/command_executions", body: `{"name":"x"}`, status: 404, code: "not_found", contains: "device"},
		{name: "no name", method: "POST", path: "/v3/devices/a/command_executions", body: `{"arguments":{}}`, status: 422, code: "invalid", contains: "name"},
		{name: "arguments not an object", method: "POST", path: "/v3/devices/a/command_executions", body: `{"name":"x","arguments":[1]}`, status: 422, code: "invalid", contains: "arguments"},
		{name: "bad JSON", method: "POST", path: "/v3/devices/a/command_executions", body: `{"name":`, status: 400, code: "bad_request"},
		{name: "unknown field", method: "POST", path: "/v3/devices/a/command_executions", body: `{"name":"x","when":"now"}`, status: 400, code: "bad_request", contains: "when"},
	})
}

func TestQueryTimeseries(t *testing.T) {
	e := newEnv(t)
	id := e.provision("a", "a")
	ctx := context.Background()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var samples []store.Sample
	for i := range 4 {
		samples = append(samples, store.Sample{DeviceID: id, Time: t0.Add(time.Duration(i*30) * time.Second),
			Values: map[string]json.RawMessage{
				"voltage": json.RawMessage(fmt.Sprint(230 + i)),
				"status":  json.RawMessage(`"ok, fine"`),
				"on":      json.RawMessage(fmt.Sprint(i == 1)),
			}})
	}
	if _, err := e.st.AppendTelemetry(ctx, samples); err != nil {
		t.Fatal(err)
	}
	query := func(body string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest("POST", e.srv.URL+"/v3/telemetry/query_timeseries", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(AuthHeader, token)
		req.Header.Set("Accept", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp.StatusCode, resp.Header, buf.Bytes()
	}
	// As Enapter's Python SDK sends it.
	code, h, body := query(`{"from":"2025-06-01T12:00:00+00:00","to":"2025-06-01T12:02:00+00:00","granularity":"60s",
		"telemetry":[{"device":"` + id + `","attribute":["voltage","status"],"aggregation":"auto","gap_filling":{"method":"none","look_around":"0s"}},
		             {"device":"a","attribute":["on","missing"],"aggregation":"bool_or"}]}`)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
		t.Fatalf("%d %s %s", code, h, body)
	}
	if got := h.Get("X-Enapter-Timeseries-Data-Types"); got != "float,string,boolean,boolean" {
		t.Errorf("data types %q", got)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v\n%s", err, body)
	}
	want := [][]string{
		{"ts", "device=" + id + " telemetry=voltage", "device=" + id + " telemetry=status", "device=a telemetry=on", "device=a telemetry=missing"},
		{fmt.Sprint(t0.Unix()), "230.5", "ok, fine", "true", ""},
		{fmt.Sprint(t0.Unix() + 60), "232.5", "ok, fine", "false", ""},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows\n%v\nwant\n%v", rows, want)
	}
	// A manifest gives the types: an integer's last is an integer.
	manifest := "blueprint_spec: device/3.0\ndisplay_name: T\nruntime:\n  type: embedded\ntelemetry:\n  voltage:\n    display_name: V\n    type: integer\n"
	if code, body := e.do("POST", "/v3/devices/"+id+"/assign_blueprint", manifest); code != 200 {
		t.Fatalf("assign: %d %s", code, body)
	}
	code, h, body = query(`{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"1m",
		"telemetry":[{"device":"a","attribute":"voltage","aggregation":"last"},{"device":"a","attribute":["voltage"],"aggregation":"avg"}]}`)
	if code != 200 || h.Get("X-Enapter-Timeseries-Data-Types") != "integer,float" || !strings.Contains(string(body), fmt.Sprintf("%d,231,230.5", t0.Unix())) {
		t.Errorf("with manifest: %d %s %s", code, h.Get("X-Enapter-Timeseries-Data-Types"), body)
	}

	// Gap filling "locf", as the Python SDK's GapFilling(LOCF, look_around)
	// sends it: an empty bucket takes the latest earlier bucket's value, from
	// before from too, at most look_around back; a selector without it is
	// left as it is.
	b := e.provision("b", "b")
	var sparse []store.Sample
	for _, p := range []struct {
		at time.Duration
		v  string
	}{{-2 * time.Minute, "1"}, {time.Minute, "5"}, {4 * time.Minute, "9"}} {
		sparse = append(sparse, store.Sample{DeviceID: b, Time: t0.Add(p.at), Values: map[string]json.RawMessage{"v": json.RawMessage(p.v)}})
	}
	if _, err := e.st.AppendTelemetry(ctx, sparse); err != nil {
		t.Fatal(err)
	}
	ts := func(m int) string { return fmt.Sprint(t0.Add(time.Duration(m) * time.Minute).Unix()) }
	for _, tc := range []struct {
		lookAround string
		want       [][]string
	}{
		{"120s", [][]string{{ts(0), "1", ""}, {ts(1), "5", "5"}, {ts(2), "5", ""}, {ts(3), "5", ""}, {ts(4), "9", "9"}, {ts(5), "9", ""}}},
		{"60s", [][]string{{ts(1), "5", "5"}, {ts(2), "5", ""}, {ts(4), "9", "9"}, {ts(5), "9", ""}}},
		{"0s", [][]string{{ts(1), "5", "5"}, {ts(4), "9", "9"}}},
	} {
		code, _, body = query(`{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:06:00Z","granularity":"60s","telemetry":[
			{"device":"b","attribute":["v"],"aggregation":"last","gap_filling":{"method":"locf","look_around":"` + tc.lookAround + `"}},
			{"device":"b","attribute":["v"],"aggregation":"last","gap_filling":{"method":"none","look_around":"0s"}}]}`)
		rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if code != 200 || err != nil || len(rows) == 0 {
			t.Fatalf("locf %s: %d %v %s", tc.lookAround, code, err, body)
		}
		if fmt.Sprint(rows[1:]) != fmt.Sprint(tc.want) {
			t.Errorf("locf look_around %s:\n%v\nwant\n%v", tc.lookAround, rows[1:], tc.want)
		}
	}

	sel := `"telemetry":[{"device":"a","attribute":["voltage"]}]`
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		contains   string
	}{
		{"no from", `{"to":"2025-06-01T12:02:00Z","granularity":"60s",` + sel + `}`, 422, "invalid", "from"},
		{"bad from", `{"from":"noon","to":"2025-06-01T12:02:00Z","granularity":"60s",` + sel + `}`, 422, "invalid", "from"},
		{"to before from", `{"from":"2025-06-01T12:02:00Z","to":"2025-06-01T12:00:00Z","granularity":"60s",` + sel + `}`, 422, "invalid", "to"},
		{"bad granularity", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"soon",` + sel + `}`, 422, "invalid", "granularity"},
		{"too many buckets", `{"from":"2000-01-01T00:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"1s",` + sel + `}`, 422, "invalid", "buckets"},
		{"no telemetry", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"60s","telemetry":[]}`, 422, "invalid", "telemetry"},
		{"unknown device", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"60s","telemetry":[{"device":"nope","attribute":["v"]}]}`, 404, "not_found", "device"},
		{"attribute wrong type", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"60s","telemetry":[{"device":"a","attribute":5}]}`, 422, "invalid", "attribute"},
		{"no attributes", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"60s","telemetry":[{"device":"a","attribute":[]}]}`, 422, "invalid", "attribute"},
		{"bad aggregation", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"60s","telemetry":[{"device":"a","attribute":["v"],"aggregation":"median"}]}`, 422, "invalid", "aggregation"},
		{"gap filling", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"60s","telemetry":[{"device":"a","attribute":["v"],"gap_filling":{"method":"linear","look_around":"1m"}}]}`, 422, "invalid", "gap_filling"},
		{"bad look_around", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"60s","telemetry":[{"device":"a","attribute":["v"],"gap_filling":{"method":"locf","look_around":"a while"}}]}`, 422, "invalid", "look_around"},
		{"negative look_around", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"60s","telemetry":[{"device":"a","attribute":["v"],"gap_filling":{"method":"locf","look_around":"-60s"}}]}`, 422, "invalid", "look_around"},
		{"look_around too far", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"1s","telemetry":[{"device":"a","attribute":["v"],"gap_filling":{"method":"locf","look_around":"100000000s"}}]}`, 422, "invalid", "look_around"},
		{"unknown field", `{"from":"2025-06-01T12:00:00Z","to":"2025-06-01T12:02:00Z","granularity":"60s","selectors":[]}`, 400, "bad_request", "selectors"},
		{"bad JSON", `{"from":`, 400, "bad_request", "JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := query(tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			checkError(t, body, tc.code, tc.contains)
		})
	}
}

// Enapter's real blueprints (../shared/marketplace beside the repository),
// zipped as enapter3 zips a folder: each uploads, or is refused with the
// same problems validate lists, each pointing at a line of its manifest.
// (Some break Enapter's own manifest schema, e.g. a "unit" on a command
// argument, which the schema does not define: a warning, which does not
// refuse the upload.)
func TestUploadMarketplaceBlueprints(t *testing.T) {
	dirs, _ := filepath.Glob("../../../shared/marketplace/blueprints/*/*")
	if len(dirs) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("../shared/marketplace/blueprints is required in CI")
		}
		t.Skip("no ../shared/marketplace beside the repository")
	}
	e := newEnv(t)
	uploaded := 0
	for _, dir := range dirs {
		files := map[string]string{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			files[filepath.ToSlash(rel)] = string(data)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Stored, not deflated: the folders hold megabytes of screenshots,
		// which deflate (here and in the hub) spent most of this test's time
		// on under -race; other tests cover deflated uploads.
		zipped := zipWith(t, files, zip.Store)
		_, vbody := e.do("POST", "/v3/blueprints/validate", zipped)
		var v struct {
			ValidationErrors []string `json:"validation_errors"`
		}
		mustUnmarshal(t, vbody, &v)
		code, body := e.do("POST", "/v3/blueprints/upload", zipped)
		switch {
		case code == 200 && len(v.ValidationErrors) == 0:
			uploaded++
		case code == 422 && len(v.ValidationErrors) > 0:
			eb := checkError(t, body, "invalid_blueprint", v.ValidationErrors[0])
			if got, _ := eb.Errors[0].Details["validation_errors"].([]any); len(got) != len(v.ValidationErrors) {
				t.Errorf("%s: upload lists %d problems, validate %d", dir, len(got), len(v.ValidationErrors))
			}
			for _, p := range v.ValidationErrors {
				if !strings.HasPrefix(p, "manifest.yml:") {
					t.Errorf("%s: problem without a position: %s", dir, p)
				}
			}
		default:
			t.Errorf("%s: upload %d %s, validate %s", dir, code, body, vbody)
		}
	}
	if uploaded == 0 {
		t.Error("no marketplace blueprint uploads")
	}
	t.Logf("%d of %d marketplace blueprints upload", uploaded, len(dirs))
}

func TestSiteExecutions(t *testing.T) {
	e := newEnv(t)
	site := e.site()
	a, b := e.provision("a", "a"), e.provision("b", "b")
	for _, d := range []string{a, b, a} {
		if code, body := e.do("POST", "/v3/devices/"+d+"/execute_command", `{"name":"ok"}`); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	list := func(q string) []executionJSON {
		t.Helper()
		code, body := e.do("GET", "/v3/sites/"+site.ID+"/commands/executions"+q, "")
		var out struct {
			Executions []executionJSON `json:"executions"`
		}
		mustUnmarshal(t, body, &out)
		if code != 200 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		return out.Executions
	}
	if all := list(""); len(all) != 3 {
		t.Errorf("all: %d", len(all))
	}
	if got := list("?device_id.in=b"); len(got) != 1 || got[0].DeviceID != b {
		t.Errorf("device_id.in=b: %+v", got)
	}
	asc := list("?order=CREATED_AT_ASC&limit=2&device_id.in=" + a + ",b")
	if len(asc) != 2 || asc[0].DeviceID != a || asc[0].CreatedAt > asc[1].CreatedAt {
		t.Errorf("ascending page: %+v", asc)
	}
	e.runErrorCases(t, []errorCase{
		{name: "unknown site", method: "GET", path: "/v3/sites/nope/commands/executions", status: 404, code: "not_found", contains: "site"},
		{name: "unknown device", method: "GET", path: "/v3/sites/" + site.ID + "/commands/executions?device_id.in=nope", status: 404, code: "not_found", contains: "device"},
		{name: "bad order", method: "GET", path: "/v3/sites/" + site.ID + "/commands/executions?order=UP", status: 422, code: "invalid", contains: "order"},
	})
}
