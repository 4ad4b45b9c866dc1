package hub_test

import (
	"net/http"
	"testing"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/testutil"
)

// The bug: a command sent to an offline device while the hub stops
// stayed NEW forever and its caller got an empty reply. Now the caller gets
// the execution as ERROR, and after a restart it is still ERROR.
func TestExecutionEndsWhenTheHubStops(t *testing.T) {
	dir := t.TempDir()
	// With anonymous clients allowed the hub cannot tell that a device it
	// has not seen is away, so it sends the commands and they wait (on its
	// own broker it would refuse them at once: device_offline).
	h := startHubWith(t, hub.Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0", AllowAnonymous: true})
	id, _ := h.provision(t, "offline", commconfig.ProtocolMQTT) // no device runs

	type answer struct {
		code int
		body struct {
			Execution execution `json:"execution"`
		}
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		a.code = h.call(t, "POST", "/v3/devices/"+id+"/execute_command", map[string]any{"name": "set_power", "timeout": 600}, &a.body)
		done <- a
	}()
	var started struct {
		ExecutionID string `json:"execution_id"`
	}
	if code := h.call(t, "POST", "/v3/devices/"+id+"/command_executions", map[string]any{"name": "set_power"}, &started); code != http.StatusOK || started.ExecutionID == "" {
		t.Fatalf("command_executions: %d %+v", code, started)
	}
	testutil.EventuallyWithin(t, waitLimit, "2 executions listed", func() bool {
		var list struct {
			Executions []execution `json:"executions"`
		}
		h.call(t, "GET", "/v3/devices/"+id+"/command_executions", nil, &list)
		return len(list.Executions) == 2
	})
	h.stop(t)
	a := <-done
	if a.code != http.StatusOK || a.body.Execution.State != "ERROR" {
		t.Fatalf("the waiting caller got %d %+v, want 200 and state ERROR", a.code, a.body.Execution)
	}

	h2 := startHub(t, dir)
	for _, eid := range []string{a.body.Execution.ID, started.ExecutionID} {
		var got struct {
			Execution execution `json:"execution"`
		}
		if code := h2.call(t, "GET", "/v3/devices/"+id+"/command_executions/"+eid, nil, &got); code != http.StatusOK || got.Execution.State != "ERROR" {
			t.Errorf("after restart, execution %s: %d %+v", eid, code, got.Execution)
		}
	}
}
