package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edk-go/edk/buffer"
	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/faultproxy"
	"github.com/edk-go/edk/internal/hubclient"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// TestRunKilledWhileOfflineLosesNothing runs `edk run --buffer` as a
// process that reaches the hub through a fault proxy: online, then offline,
// then killed with SIGKILL while offline and started again on the same
// buffer, then online again. The simulated inverter sends telemetry every
// second, stamped in whole seconds: every second from the first stored
// sample to the last must be in the hub's store, except those of the time
// the process was dead; and every sample the killed process had buffered
// must be stored.
func TestRunKilledWhileOfflineLosesNothing(t *testing.T) {
	h := startOfflineHub(t)
	id, cfg := h.provision(t, "offline")
	p := faultproxy.Start(t, h.info.MQTTAddr)
	host, port, _ := net.SplitHostPort(p.Addr())
	cfg.Host = host
	cfg.Port, _ = strconv.Atoi(port)
	blob, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	configFile := filepath.Join(dir, "config.txt")
	if err := os.WriteFile(configFile, []byte(blob), 0o600); err != nil {
		t.Fatal(err)
	}
	bufferDir := filepath.Join(dir, "buffer")
	args := []string{"run", "--config-file", configFile, "--buffer", bufferDir,
		"--metrics", "127.0.0.1:0", "--log-level", "info"}

	first := startEDK(t, args...)
	first.waitFor(t, "state=connected")
	h.waitForTelemetry(t, id, "telemetry stored while online", func(ts []int64) bool { return len(ts) >= 2 })

	p.Down()
	first.waitForMetric(t, "edk_device_buffered_messages", 3)
	killedAt := time.Now()
	first.kill(t)
	kept, atKill := bufferedTelemetry(t, bufferDir)

	second := startEDK(t, args...)
	second.waitFor(t, "starting device")
	restartedAt := time.Now() // a little after the device started: the window only widens
	// Its properties and two readings, all taken offline.
	second.waitForMetric(t, "edk_device_buffered_messages", kept+3)

	p.Up()
	// A reading taken just before the kill may not have reached the
	// buffer, and none is taken while the process is dead.
	deadFrom, deadTo := killedAt.Unix()-1, restartedAt.Unix()+1
	after := max(time.Now().Unix(), deadTo)
	ts := h.waitForTelemetry(t, id, "the backlog and live telemetry after it", func(ts []int64) bool {
		return len(ts) > 0 && ts[len(ts)-1] > after
	})
	if n := second.metric(t, "edk_device_messages_dropped_total"); n != 0 {
		t.Errorf("the second run dropped %d messages", n)
	}

	stored := make(map[int64]bool, len(ts))
	for _, s := range ts {
		stored[s] = true
	}
	// The check starts at the second sample: the device takes its first
	// reading before it starts its ticker, so when that reading takes a few
	// milliseconds just before a second ends, the next one is stamped two
	// seconds later. No reading is lost then: none is taken for that second.
	var missing, dead []int64
	for s := ts[1]; s <= ts[len(ts)-1]; s++ {
		switch {
		case stored[s]:
		case s >= deadFrom && s <= deadTo:
			dead = append(dead, s)
		default:
			missing = append(missing, s)
		}
	}
	t.Logf("%d seconds stored from %d to %d; killed at %d with %v buffered, restarted at %d; missing while dead: %v",
		len(ts), ts[0], ts[len(ts)-1], killedAt.Unix(), atKill, restartedAt.Unix(), dead)
	if len(missing) > 0 {
		t.Errorf("no telemetry stored for seconds %v (dead window %d..%d):\nfirst run:\n%s\nsecond run:\n%s",
			missing, deadFrom, deadTo, first.output, second.output)
	}
	for _, s := range atKill {
		if !stored[s] {
			t.Errorf("telemetry of second %d was in the buffer when the process was killed, and never stored", s)
		}
	}
	if ts[1] >= deadFrom {
		t.Errorf("stored telemetry %d..%d starts in the dead window %d..%d: the first run's data is missing", ts[0], ts[len(ts)-1], deadFrom, deadTo)
	}
}

// bufferedTelemetry opens the buffer a killed process left and returns
// how many messages it holds and the timestamps of the telemetry among them.
func bufferedTelemetry(t *testing.T, dir string) (messages int, ts []int64) {
	t.Helper()
	b, err := buffer.Open(dir, buffer.Options{})
	if err != nil {
		t.Fatalf("the killed process's buffer: %v", err)
	}
	defer b.Close()
	msgs, err := b.Peek(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if tp, err := mqttapi.ParseTopic(m.Topic); err != nil || tp.Kind != mqttapi.KindTelemetry {
			continue
		}
		tm, err := mqttapi.DecodeTelemetry(m.Payload)
		if err != nil {
			t.Fatalf("buffered telemetry %s: %v", m.Payload, err)
		}
		ts = append(ts, tm.Timestamp)
	}
	if len(ts) < 2 {
		t.Fatalf("the killed process had buffered telemetry of %v, want at least 2 seconds", ts)
	}
	return len(msgs), ts
}

var metricsURL = regexp.MustCompile(`msg="metrics listening" url=(\S+)`)

// metric scrapes the process's /metrics for the value of one metric.
func (p *edkProcess) metric(t *testing.T, name string) int {
	t.Helper()
	p.waitFor(t, "metrics listening")
	m := metricsURL.FindStringSubmatch(p.output.String())
	if m == nil {
		t.Fatalf("no metrics address in edk's log:\n%s", p.output)
	}
	resp, err := p.client.Get(m[1])
	if err != nil {
		t.Fatalf("scrape %s: %v", m[1], err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", m[1], err)
	}
	v := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{[^}]*\} (\S+)$`).FindSubmatch(b)
	if v == nil {
		t.Fatalf("no %s in %s:\n%s", name, m[1], b)
	}
	n, err := strconv.ParseFloat(string(v[1]), 64)
	if err != nil {
		t.Fatalf("%s %q: %v", name, v[1], err)
	}
	return int(n)
}

// waitForMetric scrapes until the metric is at least n.
func (p *edkProcess) waitForMetric(t *testing.T, name string, n int) {
	t.Helper()
	testutil.EventuallyWithin(t, waitLimit, fmt.Sprintf("%s >= %d", name, n), func() bool { return p.metric(t, name) >= n })
}

// offlineHub is a hub running in this process.
type offlineHub struct {
	info   hub.Info
	client *http.Client
}

func startOfflineHub(t *testing.T) *offlineHub {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	ready, done := make(chan hub.Info, 1), make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- hub.Run(ctx, hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
			Logger: logs.Logger(), Ready: func(i hub.Info) { ready <- i }})
	}()
	h := &offlineHub{client: &http.Client{Timeout: 5 * time.Second}}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("hub.Run = %v", err)
			}
		case <-time.After(waitLimit):
			t.Error("hub did not stop")
		}
		h.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("hub log:\n%s", logs)
		}
	})
	select {
	case h.info = <-ready:
	case err := <-done:
		t.Fatalf("hub did not start: %v", err)
	case <-time.After(waitLimit):
		t.Fatal("hub did not start")
	}
	return h
}

// call makes one API request and decodes the JSON answer into out.
func (h *offlineHub) call(t *testing.T, method, path string, body, out any) {
	t.Helper()
	api := &hubclient.Client{BaseURL: h.info.HTTPURL, Token: h.info.Token, HTTP: h.client}
	if err := api.Do(context.Background(), method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

// provision creates a device and returns its id and MQTT config.
func (h *offlineHub) provision(t *testing.T, slug string) (string, *commconfig.Config) {
	t.Helper()
	api := &hubclient.Client{BaseURL: h.info.HTTPURL, Token: h.info.Token, HTTP: h.client}
	id, cfg, err := api.Provision(context.Background(), slug, slug, commconfig.ProtocolMQTT)
	if err != nil {
		t.Fatal(err)
	}
	return id, cfg
}

// storedSeconds returns the timestamps of the device's stored power
// readings, oldest first.
func (h *offlineHub) storedSeconds(t *testing.T, id string) []int64 {
	t.Helper()
	q := url.Values{"device": {id}, "attributes": {"power"}, "to": {time.Now().Add(time.Minute).Format(time.RFC3339)}}
	var out struct {
		Telemetry struct {
			Series []struct {
				Points []struct {
					Timestamp int64 `json:"timestamp"`
				} `json:"points"`
			} `json:"series"`
		} `json:"telemetry"`
	}
	h.call(t, "GET", "/v3/telemetry?"+q.Encode(), nil, &out)
	var ts []int64
	for _, s := range out.Telemetry.Series {
		for _, p := range s.Points {
			ts = append(ts, p.Timestamp)
		}
	}
	slices.Sort(ts)
	return ts
}

// waitForTelemetry polls the store until cond holds for the stored
// timestamps, and returns them.
func (h *offlineHub) waitForTelemetry(t *testing.T, id, what string, cond func([]int64) bool) []int64 {
	t.Helper()
	var ts []int64
	testutil.EventuallyWithin(t, waitLimit, what, func() bool { ts = h.storedSeconds(t, id); return cond(ts) })
	return ts
}
