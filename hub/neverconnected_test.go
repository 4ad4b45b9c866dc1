package hub_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/edk-go/edk/hub"
)

type apiErrors struct {
	Errors []struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"errors"`
}

// A command to a device that was provisioned but has never connected (the
// README's first session, run out of order) is refused at once: on the
// hub's own broker every device session passes ingest, so the hub knows it
// is not there, though its connectivity shows UNKNOWN. It used to wait out
// the whole timeout and answer TIMEOUT.
func TestCommandToDeviceThatNeverConnected(t *testing.T) {
	h := startHub(t, t.TempDir())
	var created struct {
		DeviceID string `json:"device_id"`
	}
	h.call(t, "POST", "/v3/provisioning/standalone", map[string]any{"name": "never", "slug": "never"}, &created)
	// The HTTP client gives up long before the command's timeout: a hub that
	// waited for it would fail this test.
	h.client = &http.Client{Timeout: waitLimit / 2}
	body := map[string]any{"name": "set_power", "arguments": map[string]any{"power": 100}, "timeout": 600}
	for _, path := range []string{"/execute_command", "/command_executions"} {
		var out apiErrors
		code := h.call(t, "POST", "/v3/devices/"+created.DeviceID+path, body, &out)
		if code != http.StatusUnprocessableEntity || len(out.Errors) != 1 || out.Errors[0].Code != "device_offline" ||
			!strings.Contains(out.Errors[0].Message, "never has never connected to the hub") {
			t.Fatalf("%s to a device that never connected: %d %+v", path, code, out)
		}
	}
}

// With anonymous clients allowed, a device may be connected without ingest
// knowing which one it is: a device the hub has not seen gets the command
// (and its timeout), as before.
func TestNeverConnectedWithAnonymousClientsGetsTheCommand(t *testing.T) {
	h := startHubWith(t, hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0", AllowAnonymous: true})
	var created struct {
		DeviceID string `json:"device_id"`
	}
	h.call(t, "POST", "/v3/provisioning/standalone", map[string]any{"name": "anon", "slug": "anon"}, &created)
	var out struct {
		Execution struct {
			State string `json:"state"`
		} `json:"execution"`
	}
	code := h.call(t, "POST", "/v3/devices/"+created.DeviceID+"/execute_command", map[string]any{"name": "set_power", "timeout": 1}, &out)
	if code != http.StatusOK || out.Execution.State != "TIMEOUT" {
		t.Fatalf("execute_command with anonymous clients allowed: %d %+v", code, out)
	}
}
