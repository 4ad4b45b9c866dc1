package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A command to a device the hub knows is offline is refused at once, with
// Enapter's error shape, and never reaches the executor; one to a device
// that is online, or whose state is unknown, is sent.
func TestCommandToOfflineDevice(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	live := map[string]bool{} // device id → online; absent: unknown
	srv := httptest.NewServer(New(Config{
		Token: token, Store: e.st, Executor: e.exec, Now: func() time.Time { return e.now },
		Presence: func(id string) (bool, bool) {
			mu.Lock()
			defer mu.Unlock()
			on, ok := live[id]
			return on, ok
		},
	}))
	e.srv.Close() // newEnv's server, without Presence; its cleanup closes this one
	e.srv = srv
	setLive := func(id string, on bool) { mu.Lock(); live[id] = on; mu.Unlock() }

	id := e.provision("Inverter 1", "inverter-1")
	ctx := context.Background()
	if err := e.st.SetConnectivity(ctx, id, false, e.now.Add(-5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	sent := func() int { e.exec.mu.Lock(); defer e.exec.mu.Unlock(); return len(e.exec.timeouts) }

	for _, path := range []string{"/v3/devices/" + id + "/execute_command", "/v3/devices/inverter-1/command_executions"} {
		before := sent()
		code, body := e.do("POST", path, `{"name":"ok","timeout":60}`)
		if code != http.StatusUnprocessableEntity {
			t.Fatalf("%s to an offline device: %d %s", path, code, body)
		}
		var out struct {
			Errors []apiError `json:"errors"`
		}
		mustUnmarshal(t, body, &out)
		if len(out.Errors) != 1 || out.Errors[0].Code != "device_offline" ||
			!strings.Contains(out.Errors[0].Message, "inverter-1 is OFFLINE (last seen 2025-06-01T11:55:00.000Z, 5m0s ago)") ||
			out.Errors[0].Details["last_seen_at"] != "2025-06-01T11:55:00.000Z" || out.Errors[0].Details["device_id"] != id {
			t.Errorf("%s: %s", path, body)
		}
		if sent() != before {
			t.Errorf("%s: the command reached the executor", path)
		}
	}

	// The broker's live view wins over the stored state, which lags it.
	setLive(id, true)
	if code, body := e.do("POST", "/v3/devices/"+id+"/execute_command", `{"name":"ok"}`); code != http.StatusOK {
		t.Errorf("device online by presence, offline in the store: %d %s", code, body)
	}
	if err := e.st.SetConnectivity(ctx, id, true, e.now); err != nil {
		t.Fatal(err)
	}
	setLive(id, false)
	if code, body := e.do("POST", "/v3/devices/"+id+"/execute_command", `{"name":"ok"}`); code != http.StatusUnprocessableEntity ||
		!strings.Contains(string(body), "device_offline") {
		t.Errorf("device offline by presence, online in the store: %d %s", code, body)
	}

	// Never seen: sent, and it times out as before.
	other := e.provision("Inverter 2", "inverter-2")
	if code, body := e.do("POST", "/v3/devices/"+other+"/execute_command", `{"name":"slow"}`); code != http.StatusOK ||
		!strings.Contains(string(body), "TIMEOUT") {
		t.Errorf("device never seen: %d %s", code, body)
	}
	// A bad request is still a bad request, offline or not.
	if code, body := e.do("POST", "/v3/devices/"+id+"/execute_command", `{"name":""}`); code != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"invalid"`) {
		t.Errorf("bad request to an offline device: %d %s", code, body)
	}
}
