package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/buffer"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/faultproxy"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

func openBuffer(t *testing.T, dir string) *buffer.Buffer {
	t.Helper()
	b, err := buffer.Open(dir, buffer.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the device's own cleanup, so it runs after it.
	t.Cleanup(func() { b.Close() })
	return b
}

// seqTelemetry produces telemetry {"seq": 1}, {"seq": 2}, ...
func seqTelemetry(seq *atomic.Int64) device.TelemetryFunc {
	return func(context.Context) (mqttapi.Telemetry, error) {
		return mqttapi.Telemetry{Values: map[string]any{"seq": seq.Add(1)}, Alerts: mqttapi.NoAlerts()}, nil
	}
}

// observed is what an observer of v1/from/<hw>/# saw, in arrival order.
type observed struct {
	t    *testing.T
	msgs <-chan mqtt.Message
	seqs []int64 // telemetry seq values, duplicates included
	resp []mqttapi.CommandResponse
}

func observe(t *testing.T, addr string) *observed {
	c := testutil.Connect(t, addr)
	return &observed{t: t, msgs: testutil.Subscribe(t, c, "v1/from/"+testHW+"/#")}
}

// until reads messages until cond holds.
func (o *observed) until(what string, cond func() bool) {
	o.t.Helper()
	deadline := time.After(waitLimit)
	for !cond() {
		select {
		case m := <-o.msgs:
			tp, err := mqttapi.ParseTopic(m.Topic())
			if err != nil {
				o.t.Fatalf("device published on %q: %v", m.Topic(), err)
			}
			switch tp.Kind {
			case mqttapi.KindTelemetry:
				var v struct{ Seq int64 }
				if err := json.Unmarshal(m.Payload(), &v); err != nil {
					o.t.Fatalf("telemetry %s: %v", m.Payload(), err)
				}
				o.seqs = append(o.seqs, v.Seq)
			case mqttapi.KindCommandResponses:
				r, err := mqttapi.DecodeCommandResponse(m.Payload())
				if err != nil {
					o.t.Fatal(err)
				}
				o.resp = append(o.resp, r)
			}
		case <-deadline:
			o.t.Fatalf("waiting for %s: nothing more after %v (seqs up to %v, %d responses)", what, waitLimit, o.maxSeq(), len(o.resp))
		}
	}
}

func (o *observed) maxSeq() int64 {
	var m int64
	for _, s := range o.seqs {
		m = max(m, s)
	}
	return m
}

// checkComplete fails unless every seq from 1 to n arrived, first
// occurrences in order (a batch cut off by the outage may arrive twice).
func (o *observed) checkComplete(n int64) {
	o.t.Helper()
	next := int64(1)
	for _, s := range o.seqs {
		switch {
		case s == next:
			next++
		case s > next:
			o.t.Fatalf("seq %d arrived before %d: lost or out of order (all: %v)", s, next, o.seqs)
		}
	}
	if next <= n {
		o.t.Fatalf("seqs 1..%d expected, got up to %d", n, next-1)
	}
}

func TestBufferKeepsEverythingThroughAnOutage(t *testing.T) {
	b := testutil.StartBroker(t)
	p := faultproxy.Start(t, b.Addr())
	obs := observe(t, b.Addr())
	cl := newCloud(t, b.Addr(), testHW, testCH)
	buf := openBuffer(t, t.TempDir())

	var seq atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	d := startDevice(t, testConfig(t, p.Addr()), func(d *device.Device) {
		d.Handle("slow", func(context.Context, *device.Command) (any, error) {
			close(started)
			<-release
			return map[string]any{"done": true}, nil
		})
	}, device.WithBuffer(buf), device.WithTelemetry(5*time.Millisecond, seqTelemetry(&seq)), device.WithKeepAlive(time.Second))

	obs.until("live telemetry", func() bool { return obs.maxSeq() >= 5 })
	cl.send("during-outage", "slow", nil)
	<-started

	p.Down()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := d.WaitState(ctx, device.StateDisconnected); err != nil {
		t.Fatal(err)
	}
	close(release) // the response is produced while offline
	testutil.Eventually(t, "100 messages buffered", func() bool { return d.Stats().Buffer.Messages >= 100 })
	if st := d.Stats(); st.State != device.StateDisconnected || st.Dropped != 0 {
		t.Fatalf("stats while offline: %+v", st)
	}

	p.Up()
	if err := d.WaitState(ctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}
	target := seq.Load() + 20 // the backlog and some live data after it
	obs.until("the backlog", func() bool { return obs.maxSeq() >= target && len(obs.resp) > 0 })
	obs.checkComplete(target)
	if r := obs.resp[0]; r.ID != "during-outage" || r.State != mqttapi.StateCompleted {
		t.Fatalf("response produced offline: %+v", r)
	}

	st := d.Stats()
	if st.Reconnects != 1 || st.CommandsCompleted != 1 || st.Dropped != 0 || st.Published == 0 || st.PublishLatency.Count != st.Published {
		t.Fatalf("stats after the outage: %+v", st)
	}
}

func TestBufferSurvivesRestart(t *testing.T) {
	b := testutil.StartBroker(t)
	p := faultproxy.Start(t, b.Addr())
	obs := observe(t, b.Addr())
	dir := t.TempDir()

	// First run: connected once, then the broker goes away and the device
	// keeps producing until it is stopped.
	var seq atomic.Int64
	buf := openBuffer(t, dir)
	d := startDevice(t, testConfig(t, p.Addr()), nil, device.WithBuffer(buf),
		device.WithTelemetry(5*time.Millisecond, seqTelemetry(&seq)))
	p.Down()
	testutil.Eventually(t, "50 messages buffered", func() bool { return d.Stats().Buffer.Messages >= 50 })
	if err := d.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := buf.Close(); err != nil {
		t.Fatal(err)
	}
	produced := seq.Load()

	// Second run, same folder, broker back: everything from the first run
	// goes out before the new data.
	p.Up()
	buf2 := openBuffer(t, dir)
	if n := buf2.Stats().Messages; n == 0 {
		t.Fatal("the buffer is empty after the restart")
	}
	startDevice(t, testConfig(t, p.Addr()), nil, device.WithBuffer(buf2),
		device.WithTelemetry(5*time.Millisecond, seqTelemetry(&seq)), device.WithReplayRate(0, 0))
	obs.until("the first run's backlog", func() bool { return obs.maxSeq() > produced+5 })
	obs.checkComplete(produced + 5)
}

func TestWithoutBufferOfflineSendsFailAndAreCounted(t *testing.T) {
	b := testutil.StartBroker(t)
	p := faultproxy.Start(t, b.Addr())
	d := startDevice(t, testConfig(t, p.Addr()), nil)
	p.Down()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := d.WaitState(ctx, device.StateDisconnected); err != nil {
		t.Fatal(err)
	}
	err := d.SendTelemetry(ctx, mqttapi.Telemetry{Values: map[string]any{"x": 1}})
	if err == nil {
		t.Fatal("send while offline without a buffer succeeded")
	}
	if st := d.Stats(); st.Dropped != 1 || st.Connects != 1 {
		t.Fatalf("stats = %+v, want 1 dropped", st)
	}
}

func TestStatsCountCommandOutcomes(t *testing.T) {
	b := testutil.StartBroker(t)
	d := startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("ok", func(context.Context, *device.Command) (any, error) { return nil, nil })
		d.Handle("fail", func(context.Context, *device.Command) (any, error) { return nil, device.Errorf("no") })
		d.Handle("slow", func(ctx context.Context, _ *device.Command) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}, device.Timeout(20*time.Millisecond))
	})
	c := newCloud(t, b.Addr(), testHW, testCH)
	for i, name := range []string{"ok", "ok", "fail", "slow", "unknown"} {
		c.send("id-"+string(rune('a'+i)), name, nil)
		c.final()
	}
	st := d.Stats()
	if st.CommandsCompleted != 2 || st.CommandsFailed != 2 || st.CommandsTimedOut != 1 {
		t.Fatalf("completed %d, failed %d, timed out %d; want 2, 2 (one unknown), 1",
			st.CommandsCompleted, st.CommandsFailed, st.CommandsTimedOut)
	}
	if st.State != device.StateConnected || st.Connects != 1 || st.Reconnects != 0 {
		t.Fatalf("connection stats %+v", st)
	}
}

func TestBufferedDeviceSendsPropertiesOnEveryConnect(t *testing.T) {
	b := testutil.StartBroker(t)
	p := faultproxy.Start(t, b.Addr())
	props := testutil.Subscribe(t, testutil.Connect(t, b.Addr()), "v1/from/"+testHW+"/"+testCH+"/v1/properties")
	buf := openBuffer(t, t.TempDir())
	d := startDevice(t, testConfig(t, p.Addr()), nil, device.WithBuffer(buf),
		device.WithProperties(time.Hour, func(context.Context) (map[string]any, error) { return map[string]any{"vendor": "acme"}, nil }))
	testutil.Receive(t, props) // on start
	// The subscriber may see it before the device has its PUBACK.
	testutil.Eventually(t, "the first properties to leave the buffer", func() bool { return d.Stats().Buffer.Messages == 0 })
	if st := d.Stats(); st.Published != 1 {
		t.Fatalf("after start: %+v, want exactly one properties message sent", st)
	}

	p.Down()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := d.WaitState(ctx, device.StateDisconnected); err != nil {
		t.Fatal(err)
	}
	p.Up()
	// Long before the hour is up: the reconnect sends them again.
	testutil.Receive(t, props)
}

// failingBuffer is a buffer whose disk is gone: every call fails.
type failingBuffer struct{}

func (failingBuffer) Put(context.Context, device.Buffered) error { return errors.New("disk full") }
func (failingBuffer) Peek(context.Context, int) ([]device.Buffered, error) {
	return nil, errors.New("disk full")
}
func (failingBuffer) Ack(context.Context, []int64) error { return errors.New("disk full") }
func (failingBuffer) Stats() device.BufferStats          { return device.BufferStats{} }

func TestFailingBufferIsReportedNotFatal(t *testing.T) {
	b := testutil.StartBroker(t)
	d := startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("ok", func(context.Context, *device.Command) (any, error) { return nil, nil })
	}, device.WithBuffer(failingBuffer{}))
	err := d.SendTelemetry(context.Background(), mqttapi.Telemetry{Values: map[string]any{"x": 1}})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("send with a failing buffer: %v, want the buffer's error", err)
	}
	if st := d.Stats(); st.Dropped != 1 || st.State != device.StateConnected {
		t.Fatalf("stats %+v, want 1 dropped and still connected", st)
	}
}
