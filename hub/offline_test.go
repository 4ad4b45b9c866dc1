package hub_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
)

// A command to a device that went away is answered at once with
// device_offline, not after its whole timeout; once the device is back the
// command goes through.
func TestCommandToDeviceThatWentAway(t *testing.T) {
	h := startHub(t, t.TempDir())
	id, cfg := h.provision(t, "gone", commconfig.ProtocolMQTT)
	start := func() (stop func()) {
		d, err := device.New(cfg, device.WithBackoff(5*time.Millisecond, 50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		d.Handle("set_power", func(context.Context, *device.Command) (any, error) { return map[string]any{"ok": true}, nil })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		wctx, wcancel := context.WithTimeout(context.Background(), waitLimit)
		defer wcancel()
		if err := d.WaitState(wctx, device.StateConnected); err != nil {
			cancel()
			<-done
			t.Fatalf("device did not connect: %v", err)
		}
		return func() { cancel(); <-done }
	}
	stop := start()
	stop()

	// The HTTP client gives up long before the command's timeout: a hub that
	// waited for it would fail this test.
	h.client = &http.Client{Timeout: waitLimit / 2}
	body := map[string]any{"name": "set_power", "arguments": map[string]any{"power": 100}, "timeout": 600}
	var out struct {
		Errors []struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"errors"`
	}
	// Wait until the hub shows it OFFLINE (the device's Run returning does
	// not mean the broker has seen the connection end).
	testutil.EventuallyWithin(t, waitLimit, "the hub to show the device OFFLINE", func() bool {
		var dev struct {
			Device struct {
				Connectivity struct{ Status string } `json:"connectivity"`
			} `json:"device"`
		}
		h.call(t, "GET", "/v3/devices/"+id+"?expand=connectivity", nil, &dev)
		return dev.Device.Connectivity.Status == "OFFLINE"
	})
	for _, path := range []string{"/execute_command", "/command_executions"} {
		out.Errors = nil
		code := h.call(t, "POST", "/v3/devices/"+id+path, body, &out)
		if code != http.StatusUnprocessableEntity || len(out.Errors) != 1 || out.Errors[0].Code != "device_offline" ||
			!strings.Contains(out.Errors[0].Message, "gone is OFFLINE (last seen ") || out.Errors[0].Details["last_seen_at"] == nil {
			t.Fatalf("%s to a device shown OFFLINE: %d %+v", path, code, out)
		}
	}
	// Enapter's CLI shows the message and fails, at once.
	t.Run("enapter3", func(t *testing.T) {
		c := enapter3{t: t, bin: enapter3Path(t), url: h.info.HTTPURL, token: h.info.Token, dir: t.TempDir()}
		out, errOut, err := c.try(c.token, "device", "command", "execute", "-d", "gone", "--name", "set_power", "--arguments", `{"power": 100}`)
		if err == nil || !strings.Contains(out+errOut, "gone is OFFLINE (last seen ") {
			t.Errorf("enapter3 device command execute: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
	})
	var list struct {
		Executions []json.RawMessage `json:"executions"`
	}
	h.call(t, "GET", "/v3/devices/"+id+"/command_executions", nil, &list)
	if len(list.Executions) != 0 {
		t.Errorf("a refused command left executions: %s", list.Executions)
	}

	stop = start()
	defer stop()
	var ok struct {
		Execution execution `json:"execution"`
	}
	body["timeout"] = 10
	if code := h.call(t, "POST", "/v3/devices/"+id+"/execute_command", body, &ok); code != http.StatusOK || ok.Execution.State != "SUCCESS" {
		t.Fatalf("execute_command once the device is back: %d %+v", code, ok.Execution)
	}
}
