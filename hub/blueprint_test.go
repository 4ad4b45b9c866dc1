package hub_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/testutil"
)

// post sends a raw body and returns the status and the decoded answer.
func (r *running) post(t *testing.T, path, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+r.info.HTTPAddr+path, bytes.NewReader(body))
	req.Header.Set("X-Enapter-Auth-Token", r.info.Token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func TestAssignedBlueprintGuardsExecuteCommand(t *testing.T) {
	h := startHub(t, t.TempDir())
	id, cfg := h.provision(t, "guarded", commconfig.ProtocolMQTT)
	runInverter(t, cfg)

	broken := []byte("blueprint_spec: device/3.0\ntelemetry:\n  power: {type: nonsense}\n")
	if code, out := h.post(t, "/v3/devices/"+id+"/assign_blueprint", "application/yaml", broken); code != http.StatusUnprocessableEntity ||
		!strings.Contains(toJSON(out), "nonsense") {
		t.Fatalf("broken manifest: %d %v", code, out)
	}
	manifest, err := os.ReadFile("../sim/inverter/manifest.yml")
	if err != nil {
		t.Fatal(err)
	}
	if code, out := h.post(t, "/v3/devices/"+id+"/assign_blueprint", "application/yaml", manifest); code != http.StatusOK {
		t.Fatalf("assign_blueprint: %d %v", code, out)
	}

	code, out := h.post(t, "/v3/devices/"+id+"/execute_command", "application/json", []byte(`{"name":"set_power","arguments":{"power":"abc"}}`))
	if code != http.StatusUnprocessableEntity || !strings.Contains(toJSON(out), `argument \"power\" of set_power must be a float`) {
		t.Fatalf("bad argument: %d %v", code, out)
	}
	var list struct {
		Executions []json.RawMessage `json:"executions"`
	}
	h.call(t, "GET", "/v3/devices/"+id+"/command_executions", nil, &list)
	if len(list.Executions) != 0 {
		t.Fatalf("a rejected command was sent: %d executions", len(list.Executions))
	}

	// Defaults from the manifest are filled in before the request leaves.
	var ok struct {
		Execution struct {
			State   string `json:"state"`
			Request struct {
				Arguments map[string]any `json:"arguments"`
			} `json:"request"`
		} `json:"execution"`
	}
	h.call(t, "POST", "/v3/devices/"+id+"/execute_command", map[string]any{"name": "ramp_power", "arguments": map[string]any{"power": 1000, "step_seconds": 0}}, &ok)
	if ok.Execution.State != "SUCCESS" || ok.Execution.Request.Arguments["step_watts"] != 1000.0 {
		t.Fatalf("ramp_power with defaults: %+v", ok.Execution)
	}
}

// Telemetry that breaks the assigned manifest is reported per device.
func TestInvalidTelemetryIsReportedPerDevice(t *testing.T) {
	h := startHub(t, t.TempDir())
	id, cfg := h.provision(t, "reported", commconfig.ProtocolMQTT)
	runInverter(t, cfg)
	manifest, err := os.ReadFile("../sim/inverter/manifest.yml")
	if err != nil {
		t.Fatal(err)
	}
	// The same manifest without the voltage attribute the inverter sends.
	withoutVoltage := strings.Replace(string(manifest), "  voltage:\n", "  .voltage_removed:\n", 1)
	if code, out := h.post(t, "/v3/devices/"+id+"/assign_blueprint", "application/yaml", []byte(withoutVoltage)); code != http.StatusOK {
		t.Fatalf("assign_blueprint: %d %v", code, out)
	}
	testutil.EventuallyWithin(t, waitLimit, "the undeclared voltage reported", func() bool {
		var dev struct {
			Device struct {
				Malformed map[string]struct {
					Count int64 `json:"count"`
				} `json:"malformed"`
			} `json:"device"`
		}
		h.call(t, "GET", "/v3/devices/"+id+"?expand=malformed", nil, &dev)
		return dev.Device.Malformed["manifest/voltage/undeclared"].Count > 0
	})
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
