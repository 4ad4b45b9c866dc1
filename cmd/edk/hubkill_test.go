package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edk-go/edk/buffer"
	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/hubclient"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// TestHubKilledLosesNothingAcknowledged runs `edk hub` as a process and a
// device with an on-disk buffer sending numbered telemetry every 5 ms. The
// hub is killed with SIGKILL mid-stream and started again on the same
// ports and data folder; the device reconnects and sends what it still
// holds. The device deletes a message from its buffer when the hub
// acknowledges it, so every message it produced must end up in the store:
// once the device's buffer is empty the hub is killed again and its
// database must hold every number, each once.
func TestHubKilledLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the hub as a process and kills it")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "hub")
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	args := []string{"hub", "--data", data, "--mqtt-addr", mqttAddr, "--mqtts-addr", "-", "--http-addr", httpAddr}

	first := startEDK(t, args...)
	first.waitFor(t, "edk hub is running.")
	token := first.token(t)
	id, cfg := provisionOn(t, "http://"+httpAddr, token)

	buf, err := buffer.Open(filepath.Join(dir, "buffer"), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	d, err := device.New(cfg, device.WithBuffer(buf), device.WithBackoff(5*time.Millisecond, 50*time.Millisecond),
		device.WithReplayRate(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-runDone })

	// Numbered telemetry every 5 ms, each with its own timestamp (the store
	// keeps one value per device, attribute and second).
	base := time.Now().Add(-24 * time.Hour).Unix()
	var seq atomic.Int64
	stop, produced := make(chan struct{}), make(chan error, 1)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				produced <- nil
				return
			case <-tick.C:
			}
			n := seq.Load() + 1
			if err := d.SendTelemetry(ctx, mqttapi.Telemetry{Timestamp: base + n, Values: map[string]any{"seq": n}}); err != nil {
				produced <- fmt.Errorf("telemetry %d: %w", n, err)
				return
			}
			seq.Store(n)
		}
	}()

	// Kill the hub while the device streams to it.
	testutil.EventuallyWithin(t, waitLimit, "the device acknowledged", func() bool { return d.Stats().Published >= 100 })
	first.kill(t)
	killedAt := seq.Load()
	testutil.EventuallyWithin(t, waitLimit, "the device to buffer while the hub is down", func() bool { return seq.Load() >= killedAt+50 })
	second := startEDK(t, args...)
	second.waitFor(t, "edk hub is running.")
	testutil.EventuallyWithin(t, waitLimit, "the device back and streaming", func() bool {
		return d.Stats().State == device.StateConnected && seq.Load() > killedAt+100
	})
	close(stop)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	n := seq.Load()
	testutil.EventuallyWithin(t, waitLimit, "the buffer sent", func() bool { return d.Stats().Buffer.Messages == 0 })
	// Everything is acknowledged: kill the hub again rather than stop it.
	second.kill(t)
	cancel()
	<-runDone
	runDone <- nil // for the cleanup
	// What the hub acknowledged last is in its inbox, not yet in
	// telemetry: a hub that starts writes it before it takes devices (and
	// prints its banner). Start one, and kill that one too.
	third := startEDK(t, args...)
	third.waitFor(t, "edk hub is running.")
	third.kill(t)

	st, err := store.Open(context.Background(), filepath.Join(data, "hub.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	series, err := st.QueryTelemetry(context.Background(), id, []string{"seq"}, time.Unix(base, 0), time.Unix(base+n+1, 0), 0, store.AggAuto)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[int64]int, n)
	for _, s := range series {
		for _, p := range s.Points {
			v, err := strconv.ParseInt(string(p.Value), 10, 64)
			if err != nil || p.Time.Unix() != base+v {
				t.Fatalf("stored seq %s at %v, want it at %d", p.Value, p.Time.Unix(), base+v)
			}
			got[v]++
		}
	}
	var missing []int64
	for i := int64(1); i <= n; i++ {
		if got[i] != 1 {
			missing = append(missing, i)
		}
	}
	st2 := d.Stats()
	t.Logf("%d messages, hub killed after %d; %d stored; device: %d published, %d publish failures, %d reconnects",
		n, killedAt, len(got), st2.Published, st2.PublishFailures, st2.Reconnects)
	if len(missing) > 0 || len(got) != int(n) {
		t.Errorf("%d of seq 1..%d not stored exactly once (%d distinct stored): %v\nfirst hub:\n%s\nsecond hub:\n%s\nthird hub:\n%s",
			len(missing), n, len(got), missing, first.output, second.output, third.output)
	}
}

var hubToken = regexp.MustCompile(`(?m)^\s+token\s+(\S+)$`)

// token reads the API token from the banner of `edk hub`.
func (p *edkProcess) token(t *testing.T) string {
	t.Helper()
	m := hubToken.FindStringSubmatch(p.output.String())
	if m == nil {
		t.Fatalf("no token in the banner:\n%s", p.output)
	}
	return m[1]
}

// provisionOn creates a device on the hub at url and returns its id and
// MQTT config.
func provisionOn(t *testing.T, url, token string) (string, *commconfig.Config) {
	t.Helper()
	api := &hubclient.Client{BaseURL: url, Token: token}
	id, cfg, err := api.Provision(context.Background(), "killed", "killed", commconfig.ProtocolMQTT)
	if err != nil {
		t.Fatal(err)
	}
	return id, cfg
}
