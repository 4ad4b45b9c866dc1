//go:build lua

package luarun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
)

const v1Manifest = `blueprint_spec: device/1.0
display_name: test
communication_module:
  product: ENP-VIRTUAL
  lua_file: firmware.lua
telemetry:
  n:
    type: integer
    display_name: N
`

func writeBlueprint(t *testing.T, manifest, script string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "firmware.lua"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The v1 API: numeric Modbus codes, a failing job keeps its schedule, a
// runaway job is stopped by the watchdog, ctx.error, the sandbox.
func TestV1API(t *testing.T) {
	r := &regs{holdings: map[uint16]uint16{10: 0x1234}}
	addr, _ := modbusServer(t, r, "")
	script := `
json = require('json')
local n = 0
function main()
  scheduler.add(20, function()
    n = n + 1
    local c = modbustcp.new('` + addr + `')
    local data, err = c:read_holdings(1, 10, 1, 1000)
    local _, err2 = c:read_holdings(1, 99, 1, 1000)
    local code = c:write_holding(1, 11, 7, 1000)
    enapter.send_telemetry({ n = n, reg = data[1], err = err, exc = err2, exc_str = modbustcp.err_to_str(err2), write = code })
  end)
  scheduler.add(20, function() error('job fails') end)
  enapter.register_command_handler('runaway', function() while true do end end)
  enapter.register_command_handler('fail', function(ctx, args) ctx.error('bad ' .. args.x) ; return { no = 1 } end)
  enapter.register_command_handler('echo', function(ctx, args)
    return { io = type(io), exec = type(os.execute), loadlib = type(package.loadlib),
      relay = select(2, relay.new('port://rl-1')), rl6 = rl6.close(1),
      json = json.encode({ a = { 1, 2 } }), inspect = inspect({ 1, a = 'x' }), tostr = tostring(10 / 2) }
  end)
end
main()
`
	dir := writeBlueprint(t, v1Manifest, script)
	rt, sk := start(t, dir, Options{CallTimeout: 200 * time.Millisecond})
	testutil.Eventually(t, "three samples", func() bool { return sk.count() >= 3 })
	got := sk.telemetryJSON(t, 0)[2]
	want := map[string]any{"n": 3.0, "reg": float64(0x1234), "err": 0.0, "exc": 12.0, "exc_str": "illegal data address", "write": 0.0}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], w, got)
		}
	}
	if !strings.Contains(sk.logText(), "job fails") {
		t.Errorf("failing job not logged:\n%s", sk.logText())
	}
	ctx := context.Background()
	start := time.Now()
	_, err := rt.Command(ctx, "runaway", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "watchdog") {
		t.Errorf("runaway = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("watchdog took %v", time.Since(start))
	}
	n := sk.count()
	testutil.Eventually(t, "jobs after the runaway command", func() bool { return sk.count() > n+2 })
	_, err = rt.Command(ctx, "fail", map[string]any{"x": "input"}, nil)
	var ce *device.CommandError
	if !errors.As(err, &ce) || ce.Message != "bad input" {
		t.Errorf("fail = %v", err)
	}
	res, err := rt.Command(ctx, "echo", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := res.(map[string]any)
	for k, w := range map[string]any{"io": "nil", "exec": "nil", "loadlib": "nil", "rl6": int64(5), "json": `{"a":[1,2]}`, "inspect": `{ 1, a = "x" }`, "tostr": "5.0"} {
		if m[k] != w {
			t.Errorf("echo %s = %#v, want %#v", k, m[k], w)
		}
	}
	if s, _ := m["relay"].(string); !strings.Contains(s, "not available on this host") {
		t.Errorf("relay.new error = %v", m["relay"])
	}
}

// A syntax error is reported with the file and line, before running.
func TestSyntaxError(t *testing.T) {
	dir := writeBlueprint(t, v1Manifest, "function main(\n")
	bp, err := LoadBlueprint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(bp); err == nil || !strings.Contains(err.Error(), "firmware.lua:2:") {
		t.Errorf("Check = %v", err)
	}
	if _, err := New(bp, Options{}); err == nil {
		t.Error("New accepted a script that does not compile")
	}
}

// A v3 blueprint using the batch client:read, unmodified.
func TestSchneiderPM2100V3(t *testing.T) {
	dir := marketplace(t, "blueprints/power_meters/schneider_electric_pm2100_v3")
	r := &regs{holdings: map[uint16]uint16{}}
	for _, a := range []uint16{2699, 2703, 3059, 3109} {
		r.setFloat(a, 50)
	}
	for i := uint16(0); i < 6; i += 2 {
		r.setFloat(2999+i, 1.5)
		r.setFloat(3027+i, 230)
		r.setFloat(3053+i, 345)
	}
	for i := uint16(0); i < 20; i++ {
		r.holdings[49+i] = 0
	}
	r.holdings[49], r.holdings[50] = 'P'<<8|'M', '2'<<8|'1'
	addr, _ := modbusServer(t, r, "")
	_, sk := start(t, dir, Options{Config: map[string]map[string]any{
		"connection": {"address": int64(1), "conn_str": "tcp://" + addr},
	}})
	testutil.Eventually(t, "telemetry", func() bool { return sk.count() >= 1 })
	got := sk.telemetryJSON(t, 0)[0]
	for k, w := range map[string]any{"ac_l1_current": 1.5, "ac_l3_voltage": 230.0, "ac_l2_power": 345.0, "ac_frequency": 50.0, "status": "ok"} {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	// The blueprint's parse functions return "is_err" and the caller
	// tests "not ok": with every read good it reports its own parse alert.
	// That is the blueprint's behaviour on Enapter's runtime too.
	if d, _ := got["alert_details"].(map[string]any); d == nil || !strings.Contains(d["conn_error"].(map[string]any)["errmsg"].(string), "failed to parse other metrics") {
		t.Errorf("alert_details = %v", got["alert_details"])
	}
}

// A multi-file v3 blueprint (runtime.options.dir: src, main.lua requiring
// './smamodbusreader'), unmodified.
func TestSMASunnyTripowerV3(t *testing.T) {
	dir := marketplace(t, "blueprints/solar_inverters/sma_sunny_tripower_v3")
	r := &regs{holdings: map[uint16]uint16{}, zero: true}
	set32 := func(a uint16, v uint32) { r.holdings[a], r.holdings[a+1] = uint16(v>>16), uint16(v) }
	set32(40029, 295) // mpp
	set32(30213, 886) // no event
	set32(30775, 1234)
	set32(30771, 50000) // 500.00 V
	set32(30053, 9338)  // STP50-40
	addr, _ := modbusServer(t, r, "")
	_, sk := start(t, dir, Options{Config: map[string]map[string]any{
		"connection": {"unit_id": int64(3), "connection_str": "tcp://" + addr},
	}})
	testutil.Eventually(t, "telemetry", func() bool { return sk.count() >= 1 })
	got := sk.telemetryJSON(t, 0)[0]
	// (status stays unset: the blueprint passes the raw number to
	// convert_operating_status_to_status, which expects the name.)
	for k, w := range map[string]any{"operating_status": "mpp", "ac_total_power": 1234.0, "pv_voltage": 500.0} {
		if got[k] != w {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], w, got)
		}
	}
	if a, ok := got["alerts"].([]any); !ok || len(a) != 0 {
		t.Errorf("alerts = %v", got["alerts"])
	}
	if _, ok := got["read_time"].(float64); !ok || got["status"] != nil {
		t.Errorf("read_time = %v, status = %v", got["read_time"], got["status"])
	}
}

// on_connection_status_changed hears the device going online and offline.
func TestConnectionStatus(t *testing.T) {
	dir := writeBlueprint(t, v1Manifest, `
enapter.on_connection_status_changed(function(status) enapter.log('status ' .. status) end)
`)
	rt, sk := start(t, dir, Options{})
	rt.SetConnected(true)
	testutil.Eventually(t, "status ok", func() bool { return strings.Contains(sk.logText(), "info: status ok") })
	rt.SetConnected(false)
	testutil.Eventually(t, "status error", func() bool { return strings.Contains(sk.logText(), "info: status error") })
}

// ems-esp (v1, HTTP + JSON, inline config library): telemetry from the
// boiler API, a command that POSTs with a bearer token through
// http.request / do_request, and ctx.error when the API refuses.
func TestEmsEspV1HTTP(t *testing.T) {
	dir := marketplace(t, "blueprints/boilers/ems-esp")
	var mu sync.Mutex
	posts := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if req.Method == http.MethodPost {
			if req.Header.Get("Authorization") != "Bearer tok" {
				fmt.Fprint(w, `{"message":"unauthorized"}`)
				return
			}
			b, _ := io.ReadAll(req.Body)
			posts[req.URL.Path] = string(b)
			fmt.Fprint(w, `{"message":"OK"}`)
			return
		}
		fmt.Fprint(w, `{"curflowtemp":55.5,"selflowtemp":60,"wwcurtemp":48.2,"wwsettemp":50,"fanwork":"off","heatingpumpmod":30,"burngas":"on","flamecurr":12.3,"servicecodenumber":0,"servicecode":"-H-","heatingactive":"on","wwheat":"off"}`)
	}))
	defer srv.Close()
	rt, sk := start(t, dir, Options{})
	ctx := context.Background()
	host := strings.TrimPrefix(srv.URL, "http://")
	if _, err := rt.Command(ctx, "write_configuration", map[string]any{"address": host, "token": "bad"}, nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "boiler telemetry", func() bool {
		for _, m := range sk.telemetryJSON(t, 0) {
			if m["heating_temp_cur"] == 55.5 && m["status"] == "Heating" && m["gas"] == "On" {
				return true
			}
		}
		return false
	})
	args := map[string]any{"heating_temp": int64(61), "dhw_temp": int64(52), "dhw": true, "heating": true}
	_, err := rt.Command(ctx, "boiler_configuration", args, nil)
	var ce *device.CommandError
	if !errors.As(err, &ce) || ce.Message != "Unable to set Heating Temperature" {
		t.Fatalf("with a bad token = %v", err)
	}
	if _, err := rt.Command(ctx, "write_configuration", map[string]any{"address": host, "token": "tok"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Command(ctx, "boiler_configuration", args, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if posts["/api/boiler/heatingtemp"] != `{"value":61}` || posts["/api/boiler/wwactivated"] != `{"value": "on"}` {
		t.Errorf("posts = %v", posts)
	}
}

// A cloud-bound request goes to the local server given by --http-base-url;
// headers, cookies and basic auth pass both ways.
func TestHTTPRewriteAndObjects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, _ := req.BasicAuth()
		ck, _ := req.Cookie("sid")
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		http.SetCookie(w, &http.Cookie{Name: "next", Value: "2"})
		w.WriteHeader(201)
		fmt.Fprintf(w, "%s %s %s:%s %s", req.Method, req.URL.Path, user, pass, ck.Value)
	}))
	defer srv.Close()
	dir := writeBlueprint(t, v1Manifest, `
enapter.register_command_handler('go', function()
  local req = http.request('PUT', 'https://api.example.com/v1/thing', 'x')
  req:set_basic_auth('u', 'p')
  req:add_cookie('sid', 'abc')
  local resp, err = http.client({ timeout = 2 }):do_request(req)
  if err then return { err = err } end
  return { code = resp.code, body = resp.body, ct = resp.headers:get('content-type'),
    parts = #resp.headers:values('Content-Type'), cookie = resp.cookies[1].name }
end)
`)
	rw, err := ParseHTTPRewrite("https://api.example.com=" + srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := start(t, dir, Options{HTTPRewrites: []HTTPRewrite{rw}})
	res, err := rt.Command(context.Background(), "go", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"code": int64(201), "body": "PUT /v1/thing u:p abc", "ct": "application/json", "parts": int64(2), "cookie": "next"}
	m := res.(map[string]any)
	for k, w := range want {
		if m[k] != w {
			t.Errorf("%s = %#v, want %#v (all %v)", k, m[k], w, m)
		}
	}
}

// komfovent_ping2 (v1, modbustcp.new(address .. ':502') with the inline
// config library), unmodified; the hard-coded port reaches the simulated
// unit through ModbusTCPRewrites (edk run --modbus-tcp).
func TestKomfoventPing2V1(t *testing.T) {
	dir := marketplace(t, "blueprints/hvac/komfovent_ping2")
	r := &regs{holdings: map[uint16]uint16{999: 1, 1000: 0, 1200: 215}}
	addr, _ := modbusServer(t, r, "")
	rt, sk := start(t, dir, Options{ModbusTCPRewrites: map[string]string{"10.9.8.7:502": addr}})
	ctx := context.Background()
	if _, err := rt.Command(ctx, "write_configuration", map[string]any{"address": "10.9.8.7"}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := rt.Command(ctx, "read_ahu_configuration", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := res.(map[string]any)
	if m["operation"] != true || m["season"] != "Summer" || m["temperature"] != 21.5 {
		t.Errorf("read_ahu_configuration = %v", m)
	}
	if _, err := rt.Command(ctx, "away", nil, nil); err != nil {
		t.Errorf("away = %v", err)
	}
	r.mu.Lock()
	mode := r.holdings[1099]
	delete(r.holdings, 1200)
	r.mu.Unlock()
	if mode != 1 {
		t.Errorf("away wrote %d to register 1100, want 1", mode)
	}
	_, err = rt.Command(ctx, "read_ahu_configuration", nil, nil)
	var ce *device.CommandError
	if !errors.As(err, &ce) || ce.Message != "Can not make Modbus request" {
		t.Errorf("with register 1201 gone = %v", err)
	}
	if !strings.Contains(sk.logText(), "error: Cannot make request: 12 illegal data address") {
		t.Errorf("logs:\n%s", sk.logText())
	}
}
