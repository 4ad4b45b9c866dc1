package hub_test

import (
	"net/http"
	"testing"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/testutil"
)

// Two hub processes' worth of hubs on one mosquitto, sharing one data
// folder: device messages are split between them by the shared
// subscription, commands work through either, and each response is
// recorded once.
func TestTwoHubsOnOneExternalBroker(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	dir := t.TempDir()
	cfg := hub.Config{DataDir: dir, Broker: "mqtt://" + m.Addr, HTTPAddr: "127.0.0.1:0"}
	a := startHubWith(t, cfg)
	b := startHubWith(t, cfg)

	id, devCfg := a.provision(t, "shared", commconfig.ProtocolMQTT)
	if devCfg.Host+":"+itoa(devCfg.Port) != m.Addr {
		t.Fatalf("config points at %s:%d, want the external broker %s", devCfg.Host, devCfg.Port, m.Addr)
	}
	runInverter(t, devCfg)

	// In this order: the expected response counts depend on it.
	for _, hh := range []struct {
		name string
		h    *running
	}{{"first hub", a}, {"second hub", b}} {
		name, h := hh.name, hh.h
		var out struct {
			Execution execution `json:"execution"`
		}
		code := h.call(t, "POST", "/v3/devices/"+id+"/execute_command?expand=log",
			map[string]any{"name": "ramp_power", "arguments": map[string]any{"power": 3000, "step_seconds": 0, "step_watts": 1000}}, &out)
		if code != http.StatusOK || out.Execution.State != "SUCCESS" {
			t.Fatalf("%s: execute_command: %d %+v", name, code, out.Execution)
		}
		// Every response is in the log, the final one too: moving from 0 to
		// 3000 W is 3 steps + completed, from 3000 to 3000 W only completed.
		want := 4
		if name == "second hub" {
			want = 1
		}
		if len(out.Execution.Log) != want {
			t.Errorf("%s: %d log responses recorded, want %d (each once)", name, len(out.Execution.Log), want)
		}
	}
	// Telemetry is ingested (by whichever hub the broker picks) into the
	// shared store: both hubs show it.
	for _, h := range []*running{a, b} {
		waitLatestPower(t, h, id, 3000)
	}
}
