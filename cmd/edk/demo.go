package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/controller"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/hubclient"
	"github.com/edk-go/edk/mqttapi"
	"github.com/edk-go/edk/sim/inverter"
)

// demoAdmin is the MQTT user the demo's watcher (and the person's own edk
// watch/exec) uses on the hub; its password is random per run.
const demoAdmin = "demo"

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags("demo", "[flags]", e.stderr)
	mqttAddr := fs.String("mqtt-addr", hub.DefaultMQTTAddr, "where the hub's MQTT broker listens (127.0.0.1:0 picks a free port)")
	httpAddr := fs.String("http-addr", hub.DefaultHTTPAddr, "where the hub's HTTP API listens (127.0.0.1:0 picks a free port)")
	dataDir := fs.String("data", "", "keep the hub's data in this folder (default: a temporary folder, removed at exit)")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	script := fs.Bool("script", true, "send a few example commands once the devices are up")
	var lf logFlags
	lf.register(fs, "error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := lf.logger(e)
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if *dataDir == "" {
		dir, err := os.MkdirTemp("", "edk-demo-")
		if err != nil {
			return fmt.Errorf("create a data folder: %w", err)
		}
		defer os.RemoveAll(dir)
		*dataDir = dir
	}
	out := &lockedWriter{w: e.stdout}
	adminPassword := randomHex(12)

	// The hub runs until hubCtx ends; the demo stops it last.
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	ready := make(chan hub.Info, 1)
	hubDone := make(chan error, 1)
	go func() {
		hubDone <- hub.Run(hubCtx, hub.Config{
			DataDir: *dataDir, MQTTAddr: *mqttAddr, MQTTSAddr: "-", HTTPAddr: *httpAddr,
			AdminUser: demoAdmin, AdminPassword: adminPassword,
			Logger: logger.With("component", "hub"), Ready: func(i hub.Info) { ready <- i },
		})
	}()
	var info hub.Info
	select {
	case info = <-ready:
	case err := <-hubDone:
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w\nA port is taken (another broker, hub or edk demo?). Choose others with --mqtt-addr 127.0.0.1:1884 --http-addr 127.0.0.1:8081, or let the system pick with --mqtt-addr 127.0.0.1:0 --http-addr 127.0.0.1:0", err)
		}
		return err
	case <-ctx.Done():
		stopHub()
		return <-hubDone
	}
	api := &hubclient.Client{BaseURL: "http://" + info.HTTPAddr, Token: info.Token}
	brokerURL := "tcp://" + info.MQTTAddr

	// Two inverters, provisioned through the same HTTP API a script would use.
	type demoDevice struct {
		id  string
		cfg *commconfig.Config
		dev *device.Device
	}
	var devices []demoDevice
	for i, name := range []string{"Inverter 1", "Inverter 2"} {
		id, cfg, err := api.Provision(ctx, name, fmt.Sprintf("inverter-%d", i+1), commconfig.ProtocolMQTT)
		if err != nil {
			stopHub()
			<-hubDone
			return err
		}
		inv := inverter.New(fmt.Sprintf("DEMO-%04d", i+1))
		d, err := device.New(cfg, append(inv.Options(), device.WithLogger(logger.With("component", "device", "device", name)), device.WithManifest(inverter.Manifest()))...)
		if err != nil {
			stopHub()
			<-hubDone
			return err
		}
		devices = append(devices, demoDevice{id: id, cfg: cfg, dev: d})
	}
	first := devices[0]

	fmt.Fprintf(out, `edk demo: a local hub and two simulated inverters, on this machine only.

  hub MQTT    %s (devices use the credentials the hub issued)
  hub HTTP    http://%s (Enapter's v3 API)
  API token   %s
  Inverter 1  hardware_id %s
  Inverter 2  hardware_id %s

Below: every message on Inverter 1's topics, as the cloud would see it
(ids cut to 8 characters). Ctrl-C stops everything cleanly.

`, brokerURL, info.HTTPAddr, info.Token, devices[0].cfg.HardwareID, devices[1].cfg.HardwareID)

	client, err := controller.Dial(ctx, controller.Config{BrokerURL: brokerURL, Username: demoAdmin, Password: adminPassword,
		Logger: logger.With("component", "controller")})
	if err != nil {
		stopHub()
		<-hubDone
		return err
	}
	defer client.Close()

	// The devices start once the watch is subscribed, so that the first
	// properties message shows too.
	devCtx, stopDevices := context.WithCancel(context.Background())
	defer stopDevices()
	var devWG sync.WaitGroup
	subscribed := make(chan struct{})
	var wg sync.WaitGroup
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watchDone := make(chan error, 1)
	shown := newShownResponses()
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchDone <- client.Watch(watchCtx, first.cfg.HardwareID, "", func(ev controller.Event) {
			fmt.Fprint(out, formatDemoEvent(ev))
			if ev.Response != nil && ev.Response.State != mqttapi.StateLog {
				shown.add(ev.Response.ID)
			}
		}, controller.OnSubscribed(func() { close(subscribed) }))
	}()
	shutdown := func() error {
		stopWatch()
		wg.Wait()
		stopDevices()
		devWG.Wait()
		client.Close()
		stopHub()
		return <-hubDone
	}
	select {
	case <-subscribed:
	case err := <-watchDone:
		if err == nil { // interrupted before the watch began
			return shutdown()
		}
		_ = shutdown()
		return fmt.Errorf("watch the device: %w", err)
	case <-ctx.Done():
		return shutdown()
	}
	for _, d := range devices {
		devWG.Add(1)
		go func() {
			defer devWG.Done()
			if err := d.dev.Run(devCtx); err != nil {
				logger.Error("device stopped", "err", err)
			}
		}()
	}

	if *script {
		if err := demoScript(ctx, out, first.dev, api, first.id, shown); err != nil && ctx.Err() == nil {
			fmt.Fprintf(out, "demo script stopped: %v\n", err)
		}
	}
	// Interrupted during the script: the person is leaving, not starting.
	if ctx.Err() == nil {
		fmt.Fprintf(out, `
── your turn ──
In another terminal, while this runs (DEV is Inverter 1):
  export HUB=http://%[1]s
  export TOKEN=%[2]s
  export DEV=%[3]s
  curl -s -X POST $HUB/v3/devices/$DEV/execute_command \
    -H "X-Enapter-Auth-Token: $TOKEN" \
    -d '{"name":"set_power","arguments":{"power":3000}}'
  curl -s "$HUB/v3/telemetry/latest?devices\[$DEV\]=power,status" \
    -H "X-Enapter-Auth-Token: $TOKEN"
  EDK_MQTT_PASSWORD=%[6]s \
    %[8]s watch --broker %[4]s \
    --username %[5]s --hardware-id %[7]s
Live telemetry continues below; Ctrl-C to stop.

`, info.HTTPAddr, info.Token, first.id, brokerURL, demoAdmin, adminPassword, first.cfg.HardwareID, selfCommand())
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping: devices first (they finish running commands), then the hub")
	if err := shutdown(); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	fmt.Fprintln(out, "stopped cleanly")
	return nil
}

// demoScript shows a command round trip of each kind, sent the way a
// script would send it to Enapter: POST execute_command on the HTTP API.
func demoScript(ctx context.Context, out io.Writer, d *device.Device, api *hubclient.Client, deviceID string, shown *shownResponses) error {
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.WaitState(waitCtx, device.StateConnected); err != nil {
		return err
	}
	// Let a telemetry line or two pass first, so the commands' effect shows.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(1500 * time.Millisecond):
	}
	steps := []struct {
		title string
		name  string
		args  map[string]any
	}{
		{"set the power to 4700 W", "set_power", map[string]any{"power": 4700}},
		{"ramp down to 2000 W in steps, with progress", "ramp_power", map[string]any{"power": 2000, "step_seconds": 0.5}},
		{"a bad argument gets a clear error", "set_power", map[string]any{"power": "abc"}},
		{"an unknown command, too", "self_destruct", nil},
	}
	for i, s := range steps {
		fmt.Fprintf(out, "\n── %d/%d: %s ──\n", i+1, len(steps), s.title)
		id, state, payload, err := execute(ctx, api, deviceID, s.name, s.args)
		if err != nil {
			return fmt.Errorf("execute %s: %w", s.name, err)
		}
		// The watch is a second path to the same answer and may lag the
		// HTTP reply: wait until it has shown the response, so that each
		// step's messages stay under its own heading.
		shown.wait(ctx, id, 2*time.Second)
		fmt.Fprint(out, wrapLine(fmt.Sprintf("   HTTP → %s %s", state, payload), demoWidth, "          "))
	}
	return nil
}

// execute runs one command through the hub and returns the execution's
// id, state and compact response payload ("{}" without one).
func execute(ctx context.Context, api *hubclient.Client, deviceID, name string, args map[string]any) (id, state, payload string, err error) {
	ex, err := api.ExecuteCommand(ctx, deviceID, name, args)
	if err != nil {
		return "", "", "", err
	}
	payload = "{}"
	if ex.Response != nil {
		payload = compact(ex.Response.Payload)
	}
	return ex.ID, ex.State, payload, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lockedWriter serialises lines from the watcher and the script.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
