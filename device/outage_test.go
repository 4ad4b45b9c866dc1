package device_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edk-go/edk/device"
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
	waitUntil(t, "30 connection attempts", func() bool { return attempts.Load() >= 30 })
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
