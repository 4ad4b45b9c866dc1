package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/controller"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/mqttapi"
	"github.com/edk-go/edk/sim/inverter"
)

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags("demo", "[flags]", e.stderr)
	addr := fs.String("mqtt-addr", broker.DefaultAddr, "where the embedded MQTT broker listens (127.0.0.1:0 picks a free port)")
	hardwareID := fs.String("hardware-id", "demo-inverter", "hardware id of the simulated inverter")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	script := fs.Bool("script", true, "send a few example commands once the device is up")
	var lf logFlags
	lf.register(fs, "error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := mqttapi.ValidateID("--hardware-id", *hardwareID); err != nil {
		return usagef("%v", err)
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
	out := &lockedWriter{w: e.stdout}

	b, err := broker.Start(ctx, broker.Config{Addr: *addr, Logger: logger.With("component", "broker")})
	if errors.Is(err, broker.ErrAddrInUse) {
		return fmt.Errorf("cannot listen on %s: the port is taken (another broker, or another edk demo?).\n"+
			"Choose another port with --mqtt-addr 127.0.0.1:1884, or let the system pick one with --mqtt-addr 127.0.0.1:0", *addr)
	}
	if err != nil {
		return err
	}
	defer b.Close()
	brokerURL := "tcp://" + b.Addr()

	cfg, err := demoConfig(b.Addr(), *hardwareID)
	if err != nil {
		return err
	}
	inv := inverter.New("DEMO-0001")
	d, err := device.New(cfg, append(inv.Options(), device.WithLogger(logger.With("component", "device")), device.WithManifest(inverter.Manifest()))...)
	if err != nil {
		return err
	}
	inv.Register(d)

	fmt.Fprintf(out, `edk demo: an MQTT broker and a simulated inverter, on this machine only.

  broker   %s
  device   hardware_id=%s channel_id=%s (the inverter, connected over MQTT)

Below: every message on the device's topics, as the cloud would see it.
Ctrl-C stops everything cleanly.

`, brokerURL, cfg.HardwareID, cfg.ChannelID)

	client, err := controller.Dial(ctx, controller.Config{BrokerURL: brokerURL, Logger: logger.With("component", "controller")})
	if err != nil {
		return err
	}
	defer client.Close()

	// The device starts once the watch is subscribed, so that its first
	// properties message shows too.
	devCtx, stopDevice := context.WithCancel(context.Background())
	defer stopDevice()
	devDone := make(chan error, 1)
	subscribed := make(chan struct{})
	var wg sync.WaitGroup
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watchDone := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchDone <- client.Watch(watchCtx, cfg.HardwareID, "", func(ev controller.Event) {
			fmt.Fprintln(out, "  "+controller.FormatEvent(ev))
		}, controller.OnSubscribed(func() { close(subscribed) }))
	}()
	select {
	case <-subscribed:
	case err := <-watchDone:
		if err == nil { // interrupted before the watch began
			return nil
		}
		return fmt.Errorf("watch the device: %w", err)
	case <-ctx.Done():
		stopWatch()
		wg.Wait()
		return nil
	}
	go func() { devDone <- d.Run(devCtx) }()

	if *script {
		if err := demoScript(ctx, out, d, client, cfg, brokerURL); err != nil && ctx.Err() == nil {
			fmt.Fprintf(out, "demo script stopped: %v\n", err)
		}
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping: device first (it finishes running commands), then the broker")
	stopWatch()
	wg.Wait()
	stopDevice()
	if err := <-devDone; err != nil {
		return fmt.Errorf("device: %w", err)
	}
	fmt.Fprintln(out, "stopped cleanly")
	return nil
}

// demoConfig is the communication config the demo's device gets: the same
// kind of blob Enapter hands out, pointing at the embedded broker.
func demoConfig(addr, hardwareID string) (*commconfig.Config, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: %w", addr, err)
	}
	return &commconfig.Config{
		Version:    commconfig.Version3,
		HardwareID: hardwareID,
		ChannelID:  "primary",
		Host:       host,
		Port:       port,
		Protocol:   commconfig.ProtocolMQTT,
	}, nil
}

// demoScript shows a command round trip of each kind once the device is up.
func demoScript(ctx context.Context, out io.Writer, d *device.Device, client *controller.Client, cfg *commconfig.Config, brokerURL string) error {
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
		req   controller.Request
	}{
		{"set the power to 4700 W", controller.Request{Name: "set_power", Arguments: map[string]any{"power": 4700}}},
		{"ramp down to 2000 W in steps, with progress", controller.Request{Name: "ramp_power", Arguments: map[string]any{"power": 2000, "step_seconds": 0.5}}},
		{"a bad argument gets a clear error", controller.Request{Name: "set_power", Arguments: map[string]any{"power": "abc"}}},
		{"an unknown command, too", controller.Request{Name: "self_destruct"}},
	}
	for i, s := range steps {
		fmt.Fprintf(out, "\n── %d/%d: %s ──\n", i+1, len(steps), s.title)
		execCtx, cancel := context.WithTimeout(ctx, time.Minute)
		resp, err := client.Execute(execCtx, cfg.HardwareID, cfg.ChannelID, s.req, nil)
		cancel()
		if err != nil {
			return fmt.Errorf("execute %s: %w", s.req.Name, err)
		}
		fmt.Fprintf(out, "   → %s %s\n", resp.State, compact(resp.Payload))
	}
	fmt.Fprintf(out, `
── your turn ──
In another terminal, while this runs:
  go run ./cmd/edk exec  --broker %[1]s --hardware-id %[2]s set_power power=3000
  go run ./cmd/edk watch --broker %[1]s --hardware-id %[2]s
Live telemetry continues below; Ctrl-C to stop.

`, brokerURL, cfg.HardwareID)
	return nil
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
