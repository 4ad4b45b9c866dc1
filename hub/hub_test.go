package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/hubclient"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
	"github.com/edk-go/edk/sim/inverter"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 20 * time.Second

// running is a hub started by a test on free loopback ports.
type running struct {
	info   hub.Info
	client *http.Client // http.DefaultClient unless a test set one (HTTPS)
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startHub(t testing.TB, dir string) *running {
	t.Helper()
	return startHubWith(t, hub.Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", MQTTSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
}

func startHubWith(t testing.TB, cfg hub.Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan hub.Info, 1)
	r := &running{cancel: cancel, done: make(chan error, 1)}
	logs := &testutil.SyncBuffer{}
	go func() {
		cfg.Logger, cfg.Ready = logs.Logger(), func(i hub.Info) { ready <- i }
		r.done <- hub.Run(ctx, cfg)
	}()
	select {
	case r.info = <-ready:
	case err := <-r.done:
		t.Fatalf("hub did not start: %v", err)
	case <-time.After(waitLimit):
		t.Fatal("hub did not start")
	}
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("hub log:\n%s", logs)
		}
	})
	return r
}

func (r *running) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("hub.Run = %v", err)
			}
		case <-time.After(waitLimit):
			t.Error("hub did not stop")
		}
	})
}

// call makes one API request and decodes the JSON answer into out.
func (r *running) call(t testing.TB, method, path string, body any, out any) int {
	t.Helper()
	api := &hubclient.Client{BaseURL: r.info.HTTPURL, Token: r.info.Token, HTTP: r.client}
	code, err := api.Call(context.Background(), method, path, body, out)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// provision creates a device and runs the simulated inverter with the
// config the hub generates for protocol; it returns the device id.
func (r *running) provision(t testing.TB, slug string, protocol commconfig.Protocol) (string, *commconfig.Config) {
	t.Helper()
	var created struct {
		DeviceID string `json:"device_id"`
	}
	if code := r.call(t, "POST", "/v3/provisioning/standalone", map[string]any{"name": slug, "slug": slug}, &created); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("provision: %d", code)
	}
	var gen struct {
		Blob string `json:"blob"`
	}
	if code := r.call(t, "POST", "/v3/devices/"+created.DeviceID+"/generate_config", map[string]any{"protocol": protocol}, &gen); code != http.StatusOK {
		t.Fatalf("generate_config: %d", code)
	}
	cfg, err := commconfig.Parse(gen.Blob)
	if err != nil {
		t.Fatalf("generated config does not parse: %v", err)
	}
	return created.DeviceID, cfg
}

// publisher provisions a device and connects a bare paho client with its
// credentials, for tests and benchmarks that publish exactly what they
// choose. It returns the device's id, the client and its telemetry topic.
func (r *running) publisher(t testing.TB, slug string) (string, mqtt.Client, string) {
	t.Helper()
	id, cfg := r.provision(t, slug, commconfig.ProtocolMQTT)
	c := testutil.ConnectWith(t, testutil.ClientOptions(r.info.MQTTAddr).SetUsername(cfg.Username).SetPassword(cfg.Password))
	return id, c, "v1/from/" + cfg.HardwareID + "/" + cfg.ChannelID + "/v1/telemetry"
}

func runInverter(t testing.TB, cfg *commconfig.Config) *device.Device {
	t.Helper()
	inv := inverter.New("HUB-TEST")
	d, err := device.New(cfg, append(inv.Options(), device.WithManifest(inverter.Manifest()), device.WithBackoff(5*time.Millisecond, 50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(context.Background(), waitLimit)
	defer wcancel()
	if err := d.WaitState(wctx, device.StateConnected); err != nil {
		t.Fatalf("device did not connect to the hub: %v", err)
	}
	return d
}

type execution struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Response *struct {
		State   string          `json:"state"`
		Payload json.RawMessage `json:"payload"`
	} `json:"response"`
	Log []json.RawMessage `json:"log"`
}

func TestWholeFlow(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, dir)
	for _, protocol := range []commconfig.Protocol{commconfig.ProtocolMQTT, commconfig.ProtocolMQTTS} {
		t.Run(string(protocol), func(t *testing.T) {
			id, cfg := h.provision(t, "inv-"+strings.ToLower(string(protocol)), protocol)
			runInverter(t, cfg)

			var out struct {
				Execution execution `json:"execution"`
			}
			code := h.call(t, "POST", "/v3/devices/"+id+"/execute_command?expand=log",
				map[string]any{"name": "ramp_power", "arguments": map[string]any{"power": 2000, "step_seconds": 0}}, &out)
			if code != http.StatusOK || out.Execution.State != "SUCCESS" || out.Execution.Response == nil ||
				out.Execution.Response.State != "SUCCEEDED" || len(out.Execution.Log) < 3 {
				t.Fatalf("execute_command: %d %+v", code, out.Execution)
			}
			code = h.call(t, "POST", "/v3/devices/"+id+"/execute_command",
				map[string]any{"name": "set_power", "arguments": map[string]any{"power": "abc"}}, &out)
			if code != http.StatusOK || out.Execution.State != "ERROR" || !strings.Contains(string(out.Execution.Response.Payload), `power`) {
				t.Fatalf("bad argument: %d %+v", code, out.Execution)
			}

			// Telemetry reaches the store: wait for power=2000.
			waitLatestPower(t, h, id, 2000)
			var dev struct {
				Device struct {
					Connectivity struct {
						Status string `json:"status"`
					} `json:"connectivity"`
					Properties map[string]any `json:"properties"`
				} `json:"device"`
			}
			h.call(t, "GET", "/v3/devices/"+id+"?expand=properties,connectivity", nil, &dev)
			if dev.Device.Connectivity.Status != "ONLINE" || dev.Device.Properties["model"] != "SimInverter 10K" {
				t.Fatalf("device: %+v", dev.Device)
			}
		})
	}
}

func TestTelemetryStream(t *testing.T) {
	h := startHub(t, t.TempDir())
	id, cfg := h.provision(t, "streamed", commconfig.ProtocolMQTT)
	hdr := http.Header{"X-Enapter-Auth-Token": {h.info.Token}}
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+h.info.HTTPAddr+"/v3/devices/"+id+"/telemetry", hdr)
	if err != nil {
		t.Fatalf("dial stream: %v (%v)", err, resp)
	}
	defer ws.Close()
	runInverter(t, cfg)
	_ = ws.SetReadDeadline(time.Now().Add(waitLimit))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(msg, &m); err != nil || m["power"] == nil || m["device_id"] != id {
		t.Fatalf("stream message %s: %v", msg, err)
	}
}

func TestDeviceCannotUseAnotherDevicesTopics(t *testing.T) {
	h := startHub(t, t.TempDir())
	_, cfgA := h.provision(t, "dev-a", commconfig.ProtocolMQTT)
	_, cfgB := h.provision(t, "dev-b", commconfig.ProtocolMQTT)
	opts := testutil.ClientOptions(h.info.MQTTAddr).SetUsername(cfgA.Username).SetPassword(cfgA.Password)
	a := testutil.ConnectWith(t, opts)
	tok := a.Subscribe(mqttapi.DeviceFilter(mqttapi.ToDevice, cfgB.HardwareID, cfgB.ChannelID), 0, nil)
	if err := testutil.Wait(tok); err != nil {
		t.Fatal(err)
	}
	for _, code := range tok.(interface{ Result() map[string]byte }).Result() {
		if code != 0x80 {
			t.Fatalf("A subscribed to B's commands: SUBACK %#x", code)
		}
	}
	bad := testutil.ClientOptions(h.info.MQTTAddr).SetUsername(cfgA.Username).SetPassword("wrong")
	c := mqtt.NewClient(bad)
	if err := testutil.Wait(c.Connect()); err == nil {
		c.Disconnect(0)
		t.Fatal("wrong password accepted")
	}
}

func TestDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, dir)
	id, _ := h.provision(t, "kept", commconfig.ProtocolMQTT)
	token := h.info.Token
	// An uploaded blueprint, assigned, and the hub's site stay too.
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	sdk := &pythonSDK{t: t, http: client, base: h.info.HTTPURL, token: token}
	zipped := pythonZip(t, writeBlueprint(t, t.TempDir()))
	bpID := sdk.dto("blueprint", sdk.ok(sdkRequest{method: "POST", path: "v3/blueprints/upload", content: zipped})["blueprint"]).str("id")
	sdk.ok(sdkRequest{method: "POST", path: "v3/devices/" + id + "/assign_blueprint", json: map[string]any{"blueprint_id": bpID}})
	siteID := sdk.site(sdk.ok(sdkRequest{method: "GET", path: "v3/site"})["site"]).str("id")
	h.stop(t)

	h2 := startHub(t, dir)
	if h2.info.Token != token {
		t.Fatal("the API token changed across a restart")
	}
	var dev struct {
		Device struct {
			ID   string `json:"id"`
			Slug string `json:"slug"`
		} `json:"device"`
	}
	if code := h2.call(t, "GET", "/v3/devices/"+id, nil, &dev); code != http.StatusOK || dev.Device.Slug != "kept" {
		t.Fatalf("after restart: %d %+v", code, dev)
	}
	sdk.base = h2.info.HTTPURL
	got := sdk.device(sdk.ok(sdkRequest{method: "GET", path: "v3/devices/" + id, params: url.Values{"expand": {"manifest"}}})["device"])
	if got.str("blueprint_id") != bpID || got.str("site_id") != siteID || got.m["manifest"] == nil {
		t.Errorf("the device's blueprint or site after restart: %s", sdk.lastResponse)
	}
	if code, _, data := sdk.send(sdkRequest{method: "GET", path: "v3/blueprints/" + bpID + "/zip"}); code != http.StatusOK || !bytes.Equal(data, zipped) {
		t.Errorf("the blueprint's zip after restart: %d, %d bytes, want the %d uploaded", code, len(data), len(zipped))
	}
}

// waitLatestPower polls the latest-telemetry endpoint until the device's
// power is want.
func waitLatestPower(t testing.TB, h *running, id string, want float64) {
	t.Helper()
	testutil.EventuallyWithin(t, waitLimit, fmt.Sprintf("latest telemetry to show power %g", want), func() bool {
		var latest struct {
			Telemetry map[string]map[string]*struct {
				Timestamp *int64 `json:"timestamp"`
				Value     any    `json:"value"`
			} `json:"telemetry"`
		}
		h.call(t, "GET", fmt.Sprintf("/v3/telemetry/latest?devices[%s]=power,status", id), nil, &latest)
		p := latest.Telemetry[id]["power"]
		return p != nil && p.Value == want
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
