package device_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/internal/testutil"
)

// refusingBroker accepts MQTT connections on addr and closes them at once,
// counting them: a broker that is down, whose attempts a test can count.
func refusingBroker(t *testing.T, addr string) (attempts *atomic.Int64, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	attempts = new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			c.Close()
		}
	}()
	stop = func() { ln.Close(); <-done }
	t.Cleanup(stop)
	return attempts, stop
}

func runLogged(t *testing.T, addr string, opts ...device.Option) (*device.Device, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	d, err := device.New(testConfig(t, addr), append([]device.Option{device.WithLogger(logs.Logger()),
		device.WithBackoff(time.Millisecond, 2*time.Millisecond), device.WithConnectTimeout(time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("device log:\n%s", logs)
		}
	})
	return d, logs
}

// A broker that is down is logged once however many attempts fail (within
// the summary cadence), and the reconnection once. It used to log the
// first failure and then only every 10th attempt: nothing for 25 s.
func TestBrokerDownLogsOnceThenRecovery(t *testing.T) {
	rb := testutil.StartRestartableBroker(t)
	rb.Stop()
	attempts, refuse := refusingBroker(t, rb.Addr())
	d, logs := runLogged(t, rb.Addr(), device.WithLogEvery(time.Hour))
	testutil.EventuallyWithin(t, waitLimit, "30 connection attempts", func() bool { return attempts.Load() >= 30 })
	if n := strings.Count(logs.String(), "cannot connect to broker"); n != 1 {
		t.Fatalf("%d lines for %d failed attempts, want 1", n, attempts.Load())
	}
	refuse()
	rb.Start()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := d.WaitState(ctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}
	if !logs.WaitFor("connected to broker again", waitLimit) {
		t.Fatal("no recovery line")
	}
	out := logs.String()
	if n := strings.Count(out, "connected to broker again"); n != 1 || !strings.Contains(out, "attempts=") {
		t.Errorf("recovery logged %d times, want once with the attempts", n)
	}
	if n := strings.Count(out, "level=WARN"); n != 1 {
		t.Errorf("%d WARN lines, want 1", n)
	}
}

// While the broker stays down a summary comes at the cadence, with the
// attempts so far, the next retry, the latest error and the hint.
func TestBrokerDownSummary(t *testing.T) {
	rb := testutil.StartRestartableBroker(t)
	rb.Stop()
	refusingBroker(t, rb.Addr())
	_, logs := runLogged(t, rb.Addr(), device.WithLogEvery(5*time.Millisecond))
	if !logs.WaitFor("attempts=", waitLimit) {
		t.Fatal("no summary line")
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "attempts=") {
			for _, want := range []string{"level=WARN", "cannot connect to broker; retrying", "retry_in=", "err=", "hint=", "failing_for="} {
				if !strings.Contains(l, want) {
					t.Errorf("summary %q lacks %q", l, want)
				}
			}
			return
		}
	}
}

// failingDriver is a driver whose reads fail; logs says whether it claims
// to log its failures itself (driver.FailureLogger).
type failingDriver struct{ logs bool }

func (f *failingDriver) Telemetry(context.Context) (driver.Reading, error) {
	return driver.Reading{Alerts: []string{driver.CommunicationError}}, errors.New("no answer from the hardware")
}
func (f *failingDriver) Properties(context.Context) (map[string]any, error) {
	return nil, errors.New("no answer from the hardware")
}
func (f *failingDriver) Commands() []string { return nil }
func (f *failingDriver) Execute(context.Context, string, map[string]any) (map[string]any, error) {
	return nil, errors.New("no commands")
}
func (f *failingDriver) Close() error       { return nil }
func (f *failingDriver) LogsFailures() bool { return f.logs }

// A driver that logs its own failed reads (driver/modbus with a logger) is
// not echoed by the runtime at WARN: one outage of the hardware is one story
// in the log. A driver that does not log them gets the runtime's lines.
func TestDriverThatLogsItsFailures(t *testing.T) {
	for _, logs := range []bool{true, false} {
		t.Run(map[bool]string{true: "driver logs", false: "driver silent"}[logs], func(t *testing.T) {
			b := testutil.StartBroker(t)
			_, out := runLogged(t, b.Addr(), device.WithDriver(&failingDriver{logs: logs}, time.Millisecond))
			if !out.WaitFor("periodic telemetry failed", waitLimit) || !out.WaitFor("periodic properties failed", waitLimit) {
				t.Fatal("the failed reads were not logged at all")
			}
			warned := false
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.Contains(l, "periodic ") && strings.Contains(l, " failed") {
					if logs && !strings.Contains(l, "level=DEBUG") {
						t.Errorf("echoed above debug: %s", l)
					}
					warned = warned || strings.Contains(l, "level=WARN")
				}
			}
			if !logs && !warned {
				t.Errorf("a silent driver's failures were not warned about:\n%s", out)
			}
		})
	}
}

// The summary keeps its cadence while the backoff spaces attempts out
// further than it: here one attempt an hour, a summary every 5 ms.
func TestBrokerDownSummaryBetweenAttempts(t *testing.T) {
	rb := testutil.StartRestartableBroker(t)
	rb.Stop()
	attempts, _ := refusingBroker(t, rb.Addr())
	_, logs := runLogged(t, rb.Addr(), device.WithBackoff(time.Hour, time.Hour), device.WithLogEvery(5*time.Millisecond))
	testutil.EventuallyWithin(t, waitLimit, "three summaries", func() bool { return strings.Count(logs.String(), "attempts=1 ") >= 3 })
	if n := attempts.Load(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
	if !strings.Contains(logs.String(), "retry_in=") {
		t.Errorf("summaries without the next retry:\n%s", logs)
	}
}
