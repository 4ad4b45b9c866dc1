package hub_test

// Enapter's Python SDK (package enapter, its HTTP client enapter.http.api)
// cannot be installed here, so this test speaks for it: each request is
// built as the SDK builds it (path, query, JSON body with its nulls, headers,
// the zip it makes of a folder), and each answer is read the way the SDK's
// from_dto methods read it: a key they index must be there, an enum must
// hold one of the SDK's values, a time must parse as the SDK parses it. A
// hub answer the SDK would trip on (KeyError, ValueError) fails the test.

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/commconfig"
)

// pythonSDK sends requests as the SDK's httpx client does.
type pythonSDK struct {
	t            *testing.T
	http         *http.Client
	base, token  string
	lastRequest  string
	lastResponse []byte
}

type sdkRequest struct {
	method, path string
	params       url.Values
	json         any    // httpx json=: Content-Type application/json
	content      []byte // httpx content=: no Content-Type
	accept       string
	token        string // "" for the hub's token
}

// send makes one request and returns the status, headers and body.
func (s *pythonSDK) send(r sdkRequest) (int, http.Header, []byte) {
	s.t.Helper()
	u := s.base + "/" + r.path
	if len(r.params) > 0 {
		u += "?" + r.params.Encode()
	}
	var body io.Reader
	var contentType string
	switch {
	case r.json != nil:
		data, err := json.Marshal(r.json)
		if err != nil {
			s.t.Fatal(err)
		}
		body, contentType = bytes.NewReader(data), "application/json"
	case r.content != nil:
		body = bytes.NewReader(r.content)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		s.t.Fatal(err)
	}
	token := r.token
	if token == "" {
		token = s.token
	}
	req.Header.Set("X-Enapter-Auth-Token", token)
	req.Header.Set("User-Agent", "python-httpx/0.28.1")
	// api.Config sets allow_http for an http:// base URL, and the client
	// then sends this header with every request.
	if strings.HasPrefix(s.base, "http://") {
		req.Header.Set("X-Enapter-Allow-HTTP", "true")
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", r.method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	s.lastRequest, s.lastResponse = r.method+" "+u, data
	return resp.StatusCode, resp.Header, data
}

// ok sends a request that must succeed (httpx's is_success: 2xx) and
// returns the JSON object answered.
func (s *pythonSDK) ok(r sdkRequest) map[string]any {
	s.t.Helper()
	code, _, data := s.send(r)
	if code < 200 || code > 299 {
		s.t.Fatalf("%s: %d %s", s.lastRequest, code, data)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		s.t.Fatalf("%s: the answer is not a JSON object: %v\n%s", s.lastRequest, err, data)
	}
	return out
}

// fails sends a request that must fail the way api.check_error reads a
// failure: a JSON body with a non-empty "errors" list of objects with a
// message (code and details are optional).
func (s *pythonSDK) fails(r sdkRequest, wantStatus int) {
	s.t.Helper()
	code, _, data := s.send(r)
	if code != wantStatus {
		s.t.Errorf("%s: %d, want %d: %s", s.lastRequest, code, wantStatus, data)
		return
	}
	var dto map[string]any
	if err := json.Unmarshal(data, &dto); err != nil {
		s.t.Errorf("%s: an error body that is not JSON: %s", s.lastRequest, data)
		return
	}
	errs, _ := dto["errors"].([]any)
	if len(errs) == 0 {
		s.t.Errorf("%s: no errors list: %s", s.lastRequest, data)
		return
	}
	for _, e := range errs {
		obj, _ := e.(map[string]any)
		if msg, _ := obj["message"].(string); msg == "" {
			s.t.Errorf("%s: an error without a message: %s", s.lastRequest, data)
		}
	}
}

// The SDK's enums (enapter.http.api).
var (
	sdkAuthorizedRoles   = []string{"READONLY", "USER", "OWNER", "INSTALLER", "SYSTEM", "VENDOR"}
	sdkDeviceTypes       = []string{"LUA", "VIRTUAL_UCM", "HARDWARE_UCM", "STANDALONE", "GATEWAY", "LINK_MASTER_UCM", "LINK_SLAVE_UCM", "EMBEDDED_UCM", "NATIVE", "CHILD"}
	sdkConnectivity      = []string{"UNKNOWN", "ONLINE", "OFFLINE"}
	sdkCommunicationType = []string{"MQTT_V1_PLAINTEXT", "MQTT_V1_TLS", "MQTT_V1_LOCALHOST", "UCM_LUA", "UCM_EMBEDDED", "LINK"}
	sdkExecutionStates   = []string{"NEW", "IN_PROGRESS", "SUCCESS", "ERROR", "TIMEOUT", "UNSYNC"}
	sdkResponseStates    = []string{"STARTED", "IN_PROGRESS", "SUCCEEDED", "ERROR"}
	sdkDataTypes         = []string{"FLOAT", "INTEGER", "STRING", "STRING_ARRAY", "BOOLEAN"}
)

// dto checks one object as a from_dto reads it.
type dto struct {
	t    *testing.T
	what string
	m    map[string]any
}

func (s *pythonSDK) dto(what string, v any) dto {
	s.t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		s.t.Fatalf("%s: %s is %T, not an object: %s", s.lastRequest, what, v, s.lastResponse)
	}
	return dto{t: s.t, what: s.lastRequest + ": " + what, m: m}
}

// key is dto[key]: it must be there.
func (d dto) key(k string) any {
	d.t.Helper()
	v, ok := d.m[k]
	if !ok {
		d.t.Fatalf("%s has no %q (the SDK's KeyError): %v", d.what, k, d.m)
	}
	return v
}

func (d dto) str(k string) string {
	d.t.Helper()
	s, ok := d.key(k).(string)
	if !ok {
		d.t.Fatalf("%s: %q is %T, not a string", d.what, k, d.m[k])
	}
	return s
}

func (d dto) enum(k string, values []string) string {
	d.t.Helper()
	s := d.str(k)
	if !slices.Contains(values, s) {
		d.t.Errorf("%s: %q is %q, not one of the SDK's %v", d.what, k, s, values)
	}
	return s
}

// isoTime is datetime.fromisoformat: RFC 3339 is what the hub must send.
func (d dto) isoTime(k string) time.Time {
	d.t.Helper()
	s := d.str(k)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.t.Errorf("%s: %q is %q, not an ISO time: %v", d.what, k, s, err)
	}
	return tm
}

func (d dto) obj(k string) dto {
	d.t.Helper()
	m, ok := d.key(k).(map[string]any)
	if !ok {
		d.t.Fatalf("%s: %q is %T, not an object", d.what, k, d.m[k])
	}
	return dto{t: d.t, what: d.what + "." + k, m: m}
}

// optObj is dto.get(k): nil when absent or null.
func (d dto) optObj(k string) *dto {
	d.t.Helper()
	if d.m[k] == nil {
		return nil
	}
	o := d.obj(k)
	return &o
}

// device is Device.from_dto.
func (s *pythonSDK) device(v any) dto {
	s.t.Helper()
	d := s.dto("device", v)
	d.str("id")
	d.str("blueprint_id")
	d.str("name")
	d.str("site_id")
	d.isoTime("updated_at")
	d.str("slug")
	d.enum("type", sdkDeviceTypes)
	d.enum("authorized_role", sdkAuthorizedRoles)
	if c := d.optObj("connectivity"); c != nil {
		if _, ok := c.m["status"]; ok {
			c.enum("status", sdkConnectivity)
		}
	}
	if c := d.optObj("communication"); c != nil {
		c.enum("type", sdkCommunicationType)
	}
	return d
}

// site is Site.from_dto.
func (s *pythonSDK) site(v any) dto {
	s.t.Helper()
	d := s.dto("site", v)
	d.str("id")
	d.str("name")
	d.str("timezone")
	d.str("version")
	d.enum("authorized_role", sdkAuthorizedRoles)
	if l := d.optObj("location"); l != nil {
		l.str("name")
	}
	return d
}

// response is commands.Response.from_dto.
func (s *pythonSDK) response(v any) {
	s.t.Helper()
	d := s.dto("response", v)
	d.enum("state", sdkResponseStates)
	d.isoTime("received_at")
}

// execution is Execution.from_dto.
func (s *pythonSDK) execution(v any) dto {
	s.t.Helper()
	d := s.dto("execution", v)
	d.str("id")
	d.str("device_id")
	d.enum("state", sdkExecutionStates)
	d.isoTime("created_at")
	req := d.obj("request")
	req.str("name")
	req.obj("arguments") // dto["arguments"]: there, and an object
	if d.m["response"] != nil {
		s.response(d.m["response"])
	}
	if d.m["log"] != nil {
		log, ok := d.m["log"].([]any)
		if !ok {
			s.t.Fatalf("%s: log is %T, not a list", d.what, d.m["log"])
		}
		for _, r := range log {
			s.response(r)
		}
	}
	return d
}

// list is a page of a paginated listing: payload[key] must be a list.
func (s *pythonSDK) list(payload map[string]any, key string) []any {
	s.t.Helper()
	v, ok := payload[key]
	if !ok {
		s.t.Fatalf("%s: no %q (the SDK's KeyError): %s", s.lastRequest, key, s.lastResponse)
	}
	items, ok := v.([]any)
	if !ok {
		s.t.Fatalf("%s: %q is %T, not a list", s.lastRequest, key, v)
	}
	return items
}

// pythonZip zips a folder as blueprints.upload_directory does:
// path.rglob("*") with arcnames relative to the folder, so folders get
// entries of their own, deflated.
func pythonZip(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			_, err := zw.CreateHeader(&zip.FileHeader{Name: rel + "/"})
			return err
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: rel, Method: zip.Deflate})
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPythonSDKHTTPClient(t *testing.T) {
	h := startHub(t, t.TempDir())
	// A client of its own, as the SDK's httpx.AsyncClient is, whose
	// connections end with the test.
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	sdk := &pythonSDK{t: t, http: client, base: h.info.HTTPURL, token: h.info.Token}
	q := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	noExpand := q("expand", "")

	// sites.list(), sites.get(None), sites.get(id)
	sites := sdk.list(sdk.ok(sdkRequest{method: "GET", path: "v3/sites", params: q("limit", "50", "offset", "0")}), "sites")
	if len(sites) != 1 {
		t.Fatalf("sites: %s", sdk.lastResponse)
	}
	siteID := sdk.site(sites[0]).str("id")
	if rest := sdk.list(sdk.ok(sdkRequest{method: "GET", path: "v3/sites", params: q("limit", "50", "offset", "50")}), "sites"); len(rest) != 0 {
		t.Errorf("the page after the last is not empty, so the SDK's loop would not end: %s", sdk.lastResponse)
	}
	if got := sdk.site(sdk.ok(sdkRequest{method: "GET", path: "v3/site"})["site"]).str("id"); got != siteID {
		t.Errorf("v3/site: %s", got)
	}
	sdk.site(sdk.ok(sdkRequest{method: "GET", path: "v3/sites/" + siteID})["site"])

	// devices.create_standalone(name=...) sends site_id and slug as null,
	// then devices.get(device_id) with an empty expand.
	created := sdk.ok(sdkRequest{method: "POST", path: "v3/provisioning/standalone",
		json: map[string]any{"name": "Python inverter", "site_id": nil, "slug": nil}})
	id, _ := created["device_id"].(string)
	if id == "" {
		t.Fatalf("create_standalone: %s", sdk.lastResponse)
	}
	dev := sdk.device(sdk.ok(sdkRequest{method: "GET", path: "v3/devices/" + id, params: noExpand})["device"])
	if dev.str("site_id") != siteID {
		t.Errorf("the device's site_id %q is not the hub's site %q", dev.str("site_id"), siteID)
	}
	created = sdk.ok(sdkRequest{method: "POST", path: "v3/provisioning/standalone",
		json: map[string]any{"name": "Second", "site_id": siteID, "slug": "py-second"}})
	second, _ := created["device_id"].(string)

	// devices.generate_communication_config: the device runs on the
	// "config" object alone (the SDK has no blob).
	config := sdk.ok(sdkRequest{method: "POST", path: "v3/devices/" + id + "/generate_config", json: map[string]any{"protocol": "MQTT"}})["config"]
	cd := sdk.dto("config", config)
	cd.enum("mqtt_protocol", []string{"MQTT", "MQTTS"})
	creds := cd.obj("mqtt_credentials")
	creds.str("username")
	creds.str("password")
	cd.str("mqtt_host")
	cd.key("mqtt_port")
	if strings.ToUpper(cd.str("time_sync_protocol")) != "HTTP" {
		t.Errorf("time_sync_protocol %q is not the SDK's HTTP", cd.m["time_sync_protocol"])
	}
	cd.str("time_sync_host")
	cd.key("time_sync_port")
	cd.str("hardware_id")
	cd.str("channel_id")
	raw, _ := json.Marshal(config)
	cfg, err := commconfig.Parse(base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatalf("the config object is not a communication config: %v", err)
	}
	runInverter(t, cfg)
	tls := sdk.dto("config", sdk.ok(sdkRequest{method: "POST", path: "v3/devices/" + second + "/generate_config", json: map[string]any{"protocol": "MQTTS"}})["config"])
	tlsCreds := tls.obj("mqtt_credentials")
	tlsCreds.str("private_key")
	tlsCreds.str("certificate")
	tlsCreds.str("ca_chain")

	// devices.get(slug, every expand) and devices.list (both urls).
	all := q("expand", "manifest,properties,connectivity,communication,raised_alert_names")
	dev = sdk.device(sdk.ok(sdkRequest{method: "GET", path: "v3/devices/py-second", params: all})["device"])
	if dev.str("id") != second || dev.obj("communication").str("type") != "MQTT_V1_TLS" {
		t.Errorf("get by slug: %s", sdk.lastResponse)
	}
	// raised_alert_names, once expanded, is a list of alert names (the
	// SDK's Device.raised_alert_names: list[str] | None).
	if names, ok := dev.key("raised_alert_names").([]any); !ok {
		t.Errorf("raised_alert_names is %T, not a list", dev.m["raised_alert_names"])
	} else {
		for _, n := range names {
			if _, ok := n.(string); !ok {
				t.Errorf("an alert name that is not a string: %v", n)
			}
		}
	}
	for _, path := range []string{"v3/devices", "v3/sites/" + siteID + "/devices"} {
		page := sdk.list(sdk.ok(sdkRequest{method: "GET", path: path, params: q("expand", "connectivity,communication", "limit", "50", "offset", "0")}), "devices")
		if len(page) != 2 {
			t.Errorf("%s: %d devices", path, len(page))
		}
		for _, d := range page {
			sdk.device(d)
		}
		if rest := sdk.list(sdk.ok(sdkRequest{method: "GET", path: path, params: q("expand", "", "limit", "50", "offset", "50")}), "devices"); len(rest) != 0 {
			t.Errorf("%s: the page after the last is not empty: %s", path, sdk.lastResponse)
		}
	}
	// devices.update(name=...) sends slug as null.
	if name := sdk.device(sdk.ok(sdkRequest{method: "PATCH", path: "v3/devices/" + id,
		json: map[string]any{"name": "Renamed", "slug": nil}})["device"]).str("name"); name != "Renamed" {
		t.Errorf("update: name %q", name)
	}

	// commands.execute(expand_log=True), then without the log.
	ex := sdk.execution(sdk.ok(sdkRequest{method: "POST", path: "v3/devices/" + id + "/execute_command", params: q("expand", "log"),
		json: map[string]any{"name": "set_power", "arguments": map[string]any{"power": 1200}}})["execution"])
	if ex.str("state") != "SUCCESS" || ex.m["response"] == nil || ex.m["log"] == nil {
		t.Errorf("execute: %s", sdk.lastResponse)
	}
	// set_power without its power: the device answers an error.
	if ex := sdk.execution(sdk.ok(sdkRequest{method: "POST", path: "v3/devices/" + id + "/execute_command", params: noExpand,
		json: map[string]any{"name": "set_power", "arguments": map[string]any{}}})["execution"]); ex.str("state") != "ERROR" {
		t.Errorf("set_power without power: %s", sdk.lastResponse)
	}
	// commands.create_execution, then get_execution.
	started := sdk.ok(sdkRequest{method: "POST", path: "v3/devices/" + id + "/command_executions",
		json: map[string]any{"name": "set_power", "arguments": map[string]any{"power": 900}}})
	execID, _ := started["execution_id"].(string)
	if execID == "" {
		t.Fatalf("create_execution: %s", sdk.lastResponse)
	}
	sdk.execution(sdk.ok(sdkRequest{method: "GET", path: "v3/devices/" + id + "/command_executions/" + execID, params: noExpand})["execution"])

	// commands.list_executions(device_id=...) and (site_id=..., device_id=...):
	// order, filters and offset only, paged until an empty list.
	since := time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04:05.000000+00:00")
	for _, tc := range []struct {
		path   string
		params url.Values
		want   int
	}{
		{"v3/devices/" + id + "/command_executions", q("order", "CREATED_AT_ASC"), 3},
		{"v3/devices/" + id + "/command_executions", q("order", "CREATED_AT_DESC", "created_at.gte", since, "state.in", "ERROR", "name.in", "set_power"), 1},
		// A naive datetime's isoformat() has no zone: UTC.
		{"v3/devices/" + id + "/command_executions", q("order", "CREATED_AT_ASC", "created_at.gte", strings.TrimSuffix(since, "+00:00")), 3},
		{"v3/sites/" + siteID + "/commands/executions", q("order", "CREATED_AT_ASC", "device_id.in", id), 3},
		{"v3/sites/" + siteID + "/commands/executions", q("order", "CREATED_AT_ASC", "device_id.in", "py-second"), 0},
	} {
		offset, seen := 0, 0
		for {
			params := url.Values{}
			for k, v := range tc.params {
				params[k] = v
			}
			params.Set("offset", strconv.Itoa(offset))
			page := sdk.list(sdk.ok(sdkRequest{method: "GET", path: tc.path, params: params}), "executions")
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				sdk.execution(e)
			}
			seen += len(page)
			offset += len(page)
			if seen > tc.want {
				break
			}
		}
		if seen != tc.want {
			t.Errorf("list_executions %s %v: %d executions, want %d", tc.path, tc.params, seen, tc.want)
		}
	}

	// telemetry.latest({id: [...]}, relevance_interval=60), once the started
	// execution has set the power.
	waitLatestPower(t, h, id, 900)
	latest := sdk.ok(sdkRequest{method: "GET", path: "v3/telemetry/latest",
		params: q("devices["+id+"]", "power,no_such_attribute", "relevance_interval", "60s")})
	byDevice := sdk.dto("telemetry", latest["telemetry"]).obj(id)
	if ts, ok := byDevice.obj("power").key("timestamp").(float64); !ok || ts != float64(int64(ts)) {
		t.Errorf("latest power timestamp %v is not Unix seconds", byDevice.m["power"])
	}
	if m := byDevice.obj("no_such_attribute"); m.m["timestamp"] != nil {
		t.Errorf("a missing attribute's timestamp is %v, not null", m.m["timestamp"])
	}

	// telemetry.wide_timeseries: datetime.isoformat() times, "<n>s", the
	// selector's lower-cased enums; the CSV read as RawTimeseriesStream does.
	from := time.Now().Add(-time.Minute).UTC()
	to := time.Now().Add(time.Minute).UTC()
	code, hdr, body := sdk.send(sdkRequest{method: "POST", path: "v3/telemetry/query_timeseries", accept: "text/csv", json: map[string]any{
		"from": from.Format("2006-01-02T15:04:05.000000+00:00"), "to": to.Format("2006-01-02T15:04:05.000000+00:00"), "granularity": "1s",
		"telemetry": []any{map[string]any{"device": id, "attribute": []string{"power", "status"}, "aggregation": "auto",
			"gap_filling": map[string]any{"method": "none", "look_around": "0s"}},
			// GapFilling(method=LOCF, look_around=timedelta(minutes=2))
			map[string]any{"device": id, "attribute": []string{"voltage"}, "aggregation": "last",
				"gap_filling": map[string]any{"method": "locf", "look_around": "120s"}}},
	}})
	if code != http.StatusOK {
		t.Fatalf("query_timeseries: %d %s", code, body)
	}
	var types []string
	for _, dt := range strings.Split(hdr.Get("X-Enapter-Timeseries-Data-Types"), ",") {
		dt = strings.ToUpper(strings.TrimSpace(dt))
		if !slices.Contains(sdkDataTypes, dt) {
			t.Errorf("data type %q is not one of the SDK's %v", dt, sdkDataTypes)
		}
		types = append(types, dt)
	}
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || len(records) < 2 {
		t.Fatalf("query_timeseries CSV (%v): %s", err, body)
	}
	if records[0][0] != "ts" || len(records[0]) != len(types)+1 {
		t.Fatalf("CSV header %v for %d data types", records[0], len(types))
	}
	for _, label := range records[0][1:] {
		labels := map[string]string{}
		for _, kv := range strings.Fields(label) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.Contains(v, "=") {
				t.Errorf("label %q is not k=v pairs", label)
			}
			labels[k] = v
		}
		if labels["device"] != id || labels["telemetry"] == "" {
			t.Errorf("label %q lacks device or telemetry", label)
		}
	}
	// The LOCF column, once it has a value, has one in every later row
	// (look_around spans the whole query).
	seenVoltage := false
	for _, rec := range records[1:] {
		if v := rec[len(rec)-1]; v != "" {
			seenVoltage = true
		} else if seenVoltage {
			t.Errorf("the locf column has a gap at %s", rec[0])
		}
	}
	if !seenVoltage {
		t.Errorf("the locf column has no value: %s", body)
	}
	for _, rec := range records[1:] {
		if _, err := strconv.ParseInt(rec[0], 10, 64); err != nil {
			t.Errorf("ts %q is not an integer", rec[0])
		}
		for i, v := range rec[1:] {
			if v == "" {
				continue
			}
			switch types[i] {
			case "FLOAT":
				_, err = strconv.ParseFloat(v, 64)
			case "INTEGER":
				_, err = strconv.ParseInt(v, 10, 64)
			case "BOOLEAN":
				if !slices.Contains([]string{"true", "false", "1", "0"}, strings.ToLower(v)) {
					err = fmt.Errorf("not a boolean")
				}
			case "STRING_ARRAY":
				var a []string
				err = json.Unmarshal([]byte(v), &a)
			}
			if err != nil {
				t.Errorf("value %q of type %s: %v", v, types[i], err)
			}
		}
	}

	// blueprints.upload_directory, get, download (both views), validate.
	bpDir := writeBlueprint(t, t.TempDir())
	if err := os.MkdirAll(filepath.Join(bpDir, "lua"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bpDir, "lua", "notes.txt"), []byte("a folder of its own"), 0o644); err != nil {
		t.Fatal(err)
	}
	zipped := pythonZip(t, bpDir)
	bp := sdk.dto("blueprint", sdk.ok(sdkRequest{method: "POST", path: "v3/blueprints/upload", content: zipped})["blueprint"])
	bpID := bp.str("id")
	bp.isoTime("created_at")
	sdk.dto("blueprint", sdk.ok(sdkRequest{method: "GET", path: "v3/blueprints/" + bpID})["blueprint"]).isoTime("created_at")
	for _, view := range []string{"ORIGINAL", "COMPILED"} {
		if code, _, data := sdk.send(sdkRequest{method: "GET", path: "v3/blueprints/" + bpID + "/zip", params: q("view", view)}); code != http.StatusOK || !bytes.Equal(data, zipped) {
			t.Errorf("download view=%s: %d, %d bytes, want the %d uploaded", view, code, len(data), len(zipped))
		}
	}
	if errs, _ := sdk.ok(sdkRequest{method: "POST", path: "v3/blueprints/validate", content: zipped})["validation_errors"].([]any); len(errs) != 0 {
		t.Errorf("validate a good blueprint: %s", sdk.lastResponse)
	}
	if err := os.WriteFile(filepath.Join(bpDir, "manifest.yml"), []byte("blueprint_spec: device/3.0\ntelemetry:\n  power:\n    type: nonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	errs, _ := sdk.ok(sdkRequest{method: "POST", path: "v3/blueprints/validate", content: pythonZip(t, bpDir)})["validation_errors"].([]any)
	if len(errs) == 0 {
		t.Errorf("validate a bad blueprint: %s", sdk.lastResponse)
	}
	for _, e := range errs {
		if s, _ := e.(string); s == "" {
			t.Errorf("a validation error that is not a message (the SDK makes api.Error(msg)): %v", e)
		}
	}

	// devices.assign_blueprint, to two devices.
	for _, d := range []string{id, "py-second"} {
		got := sdk.device(sdk.ok(sdkRequest{method: "POST", path: "v3/devices/" + d + "/assign_blueprint", json: map[string]any{"blueprint_id": bpID}})["device"])
		if got.str("blueprint_id") != bpID {
			t.Errorf("assign_blueprint to %s: %s", d, sdk.lastResponse)
		}
	}

	// Failures read by api.check_error.
	sdk.fails(sdkRequest{method: "GET", path: "v3/devices/no-such-device", params: noExpand}, http.StatusNotFound)
	sdk.fails(sdkRequest{method: "GET", path: "v3/sites/no-such-site"}, http.StatusNotFound)
	sdk.fails(sdkRequest{method: "GET", path: "v3/blueprints/no-such-blueprint"}, http.StatusNotFound)
	sdk.fails(sdkRequest{method: "POST", path: "v3/devices/" + id + "/assign_blueprint", json: map[string]any{"blueprint_id": "no-such-blueprint"}}, http.StatusNotFound)
	sdk.fails(sdkRequest{method: "POST", path: "v3/blueprints/upload", content: []byte("not a zip")}, http.StatusUnprocessableEntity)
	sdk.fails(sdkRequest{method: "POST", path: "v3/devices/" + id + "/command_executions", json: map[string]any{"name": "set_power", "arguments": map[string]any{"power": "abc"}}}, http.StatusUnprocessableEntity)
	sdk.fails(sdkRequest{method: "GET", path: "v3/devices", params: q("expand", "", "limit", "50", "offset", "0"), token: "wrong-token"}, http.StatusUnauthorized)

	// devices.delete
	sdk.ok(sdkRequest{method: "DELETE", path: "v3/devices/py-second"})
	sdk.fails(sdkRequest{method: "GET", path: "v3/devices/" + second, params: noExpand}, http.StatusNotFound)
}
