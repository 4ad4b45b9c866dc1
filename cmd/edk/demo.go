package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/controller"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/hubclient"
	"github.com/edk-go/edk/internal/lifo"
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
	d := &demoRun{
		out: &lockedWriter{w: e.stdout}, logger: logger, adminPassword: randomHex(12),
		shown: newShownResponses(), script: *script,
	}
	return d.run(ctx, hub.Config{
		DataDir: *dataDir, MQTTAddr: *mqttAddr, MQTTSAddr: "-", HTTPAddr: *httpAddr,
		AdminUser: demoAdmin, Logger: logger.With("component", "hub"),
	})
}

// demoRun is one run of the demo: its steps start the parts in order and
// register their stops, which run last-started first.
type demoRun struct {
	out           io.Writer
	logger        *slog.Logger
	adminPassword string
	script        bool
	shown         *shownResponses

	stops     lifo.Stack
	info      hub.Info
	api       *hubclient.Client
	brokerURL string
	devices   []demoDevice
	client    *controller.Client
}

type demoDevice struct {
	id  string
	cfg *commconfig.Config
	dev *device.Device
}

// errDemoInterrupted ends the start early: Ctrl-C before the demo was up
// is a clean stop.
var errDemoInterrupted = errors.New("interrupted while starting")

func (d *demoRun) run(ctx context.Context, hcfg hub.Config) (err error) {
	defer func() {
		if serr := d.stops.Stop(); err == nil && serr != nil {
			err = fmt.Errorf("hub: %w", serr)
		}
	}()
	if err := d.startHub(ctx, hcfg); err != nil {
		return ignoreInterrupt(err)
	}
	if err := d.provision(ctx); err != nil {
		return err
	}
	d.printBanner()
	if err := d.dial(ctx); err != nil {
		return err
	}
	stopWatch, err := d.startWatch(ctx)
	if err != nil {
		return ignoreInterrupt(err)
	}
	d.startDevices()
	// The watch stops before the devices, so that their last messages do
	// not print after "stopping".
	d.stops.Push(stopWatch)

	if d.script {
		first := d.devices[0]
		if err := demoScript(ctx, d.out, first.dev, d.api, first.id, d.shown); err != nil && ctx.Err() == nil {
			fmt.Fprintf(d.out, "demo script stopped: %v\n", err)
		}
	}
	// Interrupted during the script: the person is leaving, not starting.
	if ctx.Err() == nil {
		d.printYourTurn()
	}
	<-ctx.Done()
	fmt.Fprintln(d.out, "\nstopping: devices first (they finish running commands), then the hub")
	if err := d.stops.Stop(); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	fmt.Fprintln(d.out, "stopped cleanly")
	return nil
}

func ignoreInterrupt(err error) error {
	if errors.Is(err, errDemoInterrupted) {
		return nil
	}
	return err
}

// startHub runs the hub until the demo stops it, last.
func (d *demoRun) startHub(ctx context.Context, cfg hub.Config) error {
	hubCtx, stopHub := context.WithCancel(context.Background())
	ready := make(chan hub.Info, 1)
	hubDone := make(chan error, 1)
	cfg.AdminPassword = d.adminPassword
	cfg.Ready = func(i hub.Info) { ready <- i }
	go func() { hubDone <- hub.Run(hubCtx, cfg) }()
	select {
	case d.info = <-ready:
	case err := <-hubDone:
		stopHub()
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w\nA port is taken (another broker, hub or edk demo?). Choose others with --mqtt-addr 127.0.0.1:1884 --http-addr 127.0.0.1:8081, or let the system pick with --mqtt-addr 127.0.0.1:0 --http-addr 127.0.0.1:0", err)
		}
		return err
	case <-ctx.Done():
		stopHub()
		if err := <-hubDone; err != nil {
			return err
		}
		return errDemoInterrupted
	}
	d.stops.Push(func() error { stopHub(); return <-hubDone })
	d.api = &hubclient.Client{BaseURL: "http://" + d.info.HTTPAddr, Token: d.info.Token}
	d.brokerURL = "tcp://" + d.info.MQTTAddr
	return nil
}

// provision makes two inverters through the same HTTP API a script would
// use, and gives the hub their manifest: it checks commands against it and
// the console draws its forms and charts from it.
func (d *demoRun) provision(ctx context.Context) error {
	for i, name := range []string{"Inverter 1", "Inverter 2"} {
		id, cfg, err := d.api.Provision(ctx, name, fmt.Sprintf("inverter-%d", i+1), commconfig.ProtocolMQTT)
		if err != nil {
			return err
		}
		if err := d.api.AssignManifest(ctx, id, inverter.ManifestYAML()); err != nil {
			return err
		}
		inv := inverter.New(fmt.Sprintf("DEMO-%04d", i+1))
		dev, err := device.New(cfg, append(inv.Options(), device.WithLogger(d.logger.With("component", "device", "device", name)), device.WithManifest(inverter.Manifest()))...)
		if err != nil {
			return err
		}
		d.devices = append(d.devices, demoDevice{id: id, cfg: cfg, dev: dev})
	}
	return nil
}

func (d *demoRun) printBanner() {
	fmt.Fprintf(d.out, `edk demo: a local hub and two simulated inverters, on this machine only.

  hub MQTT    %s (devices use the credentials the hub issued)
  hub HTTP    http://%s (Enapter's v3 API)
  API token   %s
  console     http://%s/#token=%s
  Inverter 1  hardware_id %s
  Inverter 2  hardware_id %s

Open the console address in a browser to see and drive the devices.
Below: every message on Inverter 1's topics, as the cloud would see it
(ids cut to 8 characters). Ctrl-C stops everything cleanly.

`, d.brokerURL, d.info.HTTPAddr, d.info.Token, d.info.HTTPAddr, d.info.Token, d.devices[0].cfg.HardwareID, d.devices[1].cfg.HardwareID)
}

// dial connects the demo's own MQTT client, the one that watches.
func (d *demoRun) dial(ctx context.Context) error {
	client, err := controller.Dial(ctx, controller.Config{BrokerURL: d.brokerURL, Username: demoAdmin, Password: d.adminPassword,
		Logger: d.logger.With("component", "controller")})
	if err != nil {
		return err
	}
	d.client = client
	d.stops.Push(func() error { client.Close(); return nil })
	return nil
}

// startWatch prints the first inverter's traffic and returns once the
// watch is subscribed, so that the devices' first properties show too. It
// returns the watch's stop for the caller to register.
func (d *demoRun) startWatch(ctx context.Context) (func() error, error) {
	first := d.devices[0]
	watchCtx, cancel := context.WithCancel(ctx)
	subscribed := make(chan struct{})
	watchDone := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchDone <- d.client.Watch(watchCtx, first.cfg.HardwareID, "", func(ev controller.Event) {
			fmt.Fprint(d.out, formatDemoEvent(ev))
			if ev.Response != nil && ev.Response.State != mqttapi.StateLog {
				d.shown.add(ev.Response.ID)
			}
		}, controller.OnSubscribed(func() { close(subscribed) }))
	}()
	stop := func() error { cancel(); wg.Wait(); return nil }
	select {
	case <-subscribed:
		return stop, nil
	case err := <-watchDone:
		_ = stop()
		if err == nil { // interrupted before the watch began
			return nil, errDemoInterrupted
		}
		return nil, fmt.Errorf("watch the device: %w", err)
	case <-ctx.Done():
		_ = stop()
		return nil, errDemoInterrupted
	}
}

// startDevices runs the inverters until the demo stops them.
func (d *demoRun) startDevices() {
	devCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, dd := range d.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := dd.dev.Run(devCtx); err != nil {
				d.logger.Error("device stopped", "err", err)
			}
		}()
	}
	d.stops.Push(func() error { stop(); wg.Wait(); return nil })
}

func (d *demoRun) printYourTurn() {
	first := d.devices[0]
	fmt.Fprintf(d.out, `
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

`, d.info.HTTPAddr, d.info.Token, first.id, d.brokerURL, demoAdmin, d.adminPassword, first.cfg.HardwareID, selfCommand())
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
		{"a bad argument is refused by the hub, which checks the manifest", "set_power", map[string]any{"power": "abc"}},
		{"an unknown command is refused too", "self_destruct", nil},
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
		if id != "" {
			shown.wait(ctx, id, 5*time.Second)
		}
		fmt.Fprint(out, wrapLine(fmt.Sprintf("   HTTP → %s %s", state, payload), demoWidth, "          "))
	}
	return nil
}

// execute runs one command through the hub and returns the execution's
// id, state and compact response payload ("{}" without one).
func execute(ctx context.Context, api *hubclient.Client, deviceID, name string, args map[string]any) (id, state, payload string, err error) {
	ex, err := api.ExecuteCommand(ctx, deviceID, name, args)
	// The hub holds commands to the device's manifest: what breaks it is
	// refused (422) before it reaches the device.
	var se *hubclient.StatusError
	if errors.As(err, &se) && se.Code == http.StatusUnprocessableEntity {
		if _, msg, ok := se.First(); ok {
			return "", "REFUSED by the hub (422):", msg, nil
		}
	}
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
