package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/edk-go/edk/internal/hubclient"
	"github.com/edk-go/edk/internal/testutil"
)

// TestHubKilledExecutionEnds is issue 10's bug across a crash: an execution
// started for a device that never connected waits in the hub (its timeout
// is 10 minutes) when the hub is killed with SIGKILL, so nothing marks it
// finished. The next hub on the same data folder must answer it as ERROR,
// not NEW forever.
func TestHubKilledExecutionEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the hub as a process and kills it")
	}
	data := filepath.Join(t.TempDir(), "hub")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	args := []string{"hub", "--data", data, "--mqtt-addr", fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)),
		"--mqtts-addr", "-", "--http-addr", httpAddr,
		// With anonymous clients the hub cannot know a device never
		// connected (it may be one of them), so the command is sent and
		// waits; without, it is refused at once with device_offline.
		"--allow-anonymous"}

	first := startEDK(t, args...)
	first.waitFor(t, "edk hub is running.")
	token := first.token(t)
	id, _ := provisionOn(t, "http://"+httpAddr, token) // no device runs: UNKNOWN
	api := &hubclient.Client{BaseURL: "http://" + httpAddr, Token: token}
	ctx := context.Background()
	var started struct {
		ExecutionID string `json:"execution_id"`
	}
	if code, err := api.Call(ctx, "POST", "/v3/devices/"+id+"/command_executions",
		map[string]any{"name": "set_power", "arguments": map[string]any{"power": 1}, "timeout": 600}, &started); err != nil || code != http.StatusOK {
		t.Fatalf("command_executions: %d %v", code, err)
	}
	type execution struct {
		Execution struct {
			State string `json:"state"`
		} `json:"execution"`
	}
	state := func() string {
		t.Helper()
		var got execution
		if code, err := api.Call(ctx, "GET", "/v3/devices/"+id+"/command_executions/"+started.ExecutionID, nil, &got); err != nil || code != http.StatusOK {
			t.Fatalf("get execution: %d %v", code, err)
		}
		return got.Execution.State
	}
	if s := state(); s != "NEW" && s != "IN_PROGRESS" {
		t.Fatalf("before the kill the execution is %s, want it still waiting", s)
	}
	first.kill(t)

	second := startEDK(t, args...)
	second.waitFor(t, "edk hub is running.")
	if s := state(); s != "ERROR" {
		t.Errorf("after a crash and a restart the execution is %s, want ERROR\nfirst hub:\n%s\nsecond hub:\n%s", s, first.output, second.output)
	}
	second.kill(t)
}
