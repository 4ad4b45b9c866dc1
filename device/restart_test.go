package device_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/faultproxy"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// The broker restart tests kill the broker under a buffered device and
// count: every telemetry sample produced arrives, the command in progress
// gets exactly one final response, and its handler runs once.
//
// Two things make them deterministic. A broker acknowledges a message
// before it has delivered it to subscribers (mochi does, and mosquitto's
// queues die with it), so a message in flight when the broker dies can be
// lost between the broker and the observer, which is no fault of the
// device: the telemetry is paused, and everything sent so far received,
// before the broker is stopped. And the restarted broker has no sessions,
// so the observer must be subscribed again before the device sends its
// backlog: the device reaches the broker through a fault proxy that stays
// down until the observer is back.

func TestBrokerRestartLosesNothing(t *testing.T) {
	b := testutil.StartRestartableBroker(t)
	checkBrokerRestart(t, b.Addr(), b.Stop, b.Start)
}

func TestMosquittoRestartLosesNothing(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	checkBrokerRestart(t, m.Addr, m.Stop, m.Start)
}

func checkBrokerRestart(t *testing.T, addr string, stopBroker, startBroker func()) {
	p := faultproxy.Start(t, addr)
	obs := observe(t, addr)
	cl := &cloud{t: t, c: testutil.Connect(t, addr), hw: testHW, ch: testCH}
	buf := openBuffer(t, t.TempDir())

	var seq atomic.Int64
	var tap valve
	var runs atomic.Int64
	started, release := make(chan struct{}, 1), make(chan struct{})
	d := startDevice(t, testConfig(t, p.Addr()), func(d *device.Device) {
		d.Handle("slow", func(ctx context.Context, _ *device.Command) (any, error) {
			runs.Add(1)
			select {
			case started <- struct{}{}:
			default:
			}
			select {
			case <-release:
				return map[string]any{"done": true}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	}, device.WithBuffer(buf), device.WithTelemetry(5*time.Millisecond, tap.wrap(seqTelemetry(&seq))),
		device.WithKeepAlive(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitLimit)
	defer cancel()

	obs.until("live telemetry", func() bool { return obs.maxSeq() >= 50 })
	cl.send("across-restart", "slow", nil)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the slow command did not start")
	}

	// Quiesce, so that nothing is in flight inside the broker when it dies.
	tap.close(t)
	produced := seq.Load()
	obs.until("everything produced before the restart", func() bool { return obs.maxSeq() >= produced })

	stopBroker()
	// The broker closed the device's connection; keep the device away from
	// the new broker until the observer is subscribed to it.
	p.Down()
	if err := d.WaitState(ctx, device.StateDisconnected); err != nil {
		t.Fatal(err)
	}
	tap.open()
	close(release) // the final response is produced while the broker is down
	testutil.Eventually(t, "a backlog of 100 messages and the response", func() bool {
		st := d.Stats()
		return st.Buffer.Messages >= 100 && st.CommandsCompleted == 1
	})

	startBroker()
	obs.resubscribe(addr)
	cl.c = testutil.Connect(t, addr)
	p.Up()
	if err := d.WaitState(ctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}
	target := seq.Load() + 20 // the backlog and some live data after it
	obs.until("the backlog", func() bool { return obs.maxSeq() >= target && len(obs.resp) > 0 })
	obs.checkComplete(target)
	if r := obs.resp[0]; r.ID != "across-restart" {
		t.Errorf("first response after the restart %+v, want the one produced while the broker was down", r)
	}

	// A command sent now is answered after anything still on its way: its
	// response proves that no second answer to the first command follows.
	cl.send("after-restart", "__marker__", nil)
	obs.until("the marker's response", func() bool { return obs.responded("after-restart") })
	finals := 0
	for _, r := range obs.resp {
		switch {
		case r.ID == "across-restart" && r.State.Final():
			finals++
			if r.State != mqttapi.StateCompleted {
				t.Errorf("final response %+v, want completed", r)
			}
		case r.ID != "after-restart":
			t.Errorf("unexpected response %+v", r)
		}
	}
	if finals != 1 {
		t.Errorf("%d final responses to the command running across the restart, want 1 (all: %+v)", finals, obs.resp)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the command's handler ran %d times, want 1", n)
	}
	if st := d.Stats(); st.Reconnects != 1 || st.Dropped != 0 || st.CommandsCompleted != 1 {
		t.Errorf("stats after the restart: %+v", st)
	}
	t.Logf("%d samples checked, %d of them before the restart; %d telemetry messages received", target, produced, len(obs.seqs))
}

// resubscribe connects the observer again, after a broker restart, with
// the same subscription; what the old connection had delivered is kept.
func (o *observed) resubscribe(addr string) {
	o.t.Helper()
	o.msgs = testutil.Subscribe(o.t, testutil.Connect(o.t, addr), "v1/from/"+testHW+"/#")
}

// responded reports whether a final response to id has arrived.
func (o *observed) responded(id string) bool {
	for _, r := range o.resp {
		if r.ID == id && r.State.Final() {
			return true
		}
	}
	return false
}

// valve pauses a telemetry function: while closed, the device's telemetry
// loop waits inside it and produces nothing.
type valve struct {
	mu     sync.Mutex
	shut   chan struct{} // closed by open; nil while open
	parked chan struct{} // closed once the loop waits at the valve
}

// close closes the valve and waits until the telemetry loop waits at it:
// everything produced before has been handed to the device by then.
func (v *valve) close(t *testing.T) {
	t.Helper()
	v.mu.Lock()
	v.shut, v.parked = make(chan struct{}), make(chan struct{})
	parked := v.parked
	v.mu.Unlock()
	select {
	case <-parked:
	case <-time.After(waitLimit):
		t.Fatal("the telemetry loop did not stop at the valve")
	}
}

func (v *valve) open() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.shut != nil {
		close(v.shut)
		v.shut = nil
	}
}

func (v *valve) wrap(fn device.TelemetryFunc) device.TelemetryFunc {
	return func(ctx context.Context) (mqttapi.Telemetry, error) {
		v.mu.Lock()
		shut, parked := v.shut, v.parked
		if shut != nil {
			select {
			case <-parked:
			default:
				close(parked)
			}
		}
		v.mu.Unlock()
		if shut != nil {
			select {
			case <-shut:
			case <-ctx.Done():
				return mqttapi.Telemetry{}, ctx.Err()
			}
		}
		return fn(ctx)
	}
}
