package modbus_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/edk-go/edk/driver/modbus"
	"github.com/edk-go/edk/internal/testutil"
)

const twoGroups = `
modbus: {address: ADDR, poll: 1s}
telemetry:
  fast: {register: 0}
  slow: {register: 1, poll: 10s}
`

func countLines(log, level, msg string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level="+level) && strings.Contains(l, msg) {
			n++
		}
	}
	return n
}

// A device that is down is logged once when it stops answering, however
// often it is polled and however many poll groups fail, then at the
// summary cadence, and once when it answers again. (It used to write two
// long WARN lines per poll.)
func TestDeviceDownLogsOnce(t *testing.T) {
	s := startSim(t, "")
	s.SetRegisters(modbus.Holding, 0, 1, 2)
	logs := &testutil.SyncBuffer{}
	d := newDriver(t, s, twoGroups, modbus.Options{Logger: logs.Logger(), LogEvery: time.Hour})
	ctx := ctxT(t)
	if _, err := d.Telemetry(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// Both groups fail (their reads are due at once after a failure),
	// with no fixed wait: as fast as a 1 ms backoff allows.
	for _, p := range d.Groups() {
		if _, err := d.Poll(ctx, p); err == nil {
			t.Fatal("telemetry from a stopped device")
		}
	}
	polls := 0
	testutil.Eventually(t, "25 connection attempts and 200 polls", func() bool {
		for range 10 { // between Eventually's pauses, which let the 1 ms backoff pass
			if _, err := d.Telemetry(ctx); err == nil {
				t.Fatal("telemetry from a stopped device")
			}
			polls++
		}
		return d.Stats().DialFailures >= 25 && polls >= 200
	})
	out := logs.String()
	if n := countLines(out, "WARN", ""); n != 1 {
		t.Fatalf("%d WARN lines for a device down through %d polls, want 1:\n%s", n, polls, out)
	}
	if !strings.Contains(out, "the device does not answer; reconnecting") {
		t.Errorf("first line: %s", out)
	}

	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the driver to reconnect", func() bool {
		_, err := d.Telemetry(ctx)
		return err == nil
	})
	for range 5 {
		if _, err := d.Telemetry(ctx); err != nil {
			t.Fatal(err)
		}
	}
	out = logs.String()
	if n := countLines(out, "INFO", "the device answers again"); n != 1 || !strings.Contains(out, "attempts=") {
		t.Fatalf("recovery logged %d times, want once with the attempts:\n%s", n, out)
	}
}

// While the device stays down, a summary line comes at the cadence with the
// attempts so far, the next retry and the latest error.
func TestDeviceDownSummary(t *testing.T) {
	s := startSim(t, "")
	logs := &testutil.SyncBuffer{}
	d := newDriver(t, s, twoGroups, modbus.Options{Logger: logs.Logger(), LogEvery: time.Millisecond})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	testutil.Eventually(t, "a summary line", func() bool {
		d.Telemetry(ctx)
		return strings.Contains(logs.String(), "attempts=")
	})
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "attempts=") {
			for _, want := range []string{"level=WARN", "cannot connect to the device; retrying", "retry_in=", "err=", "failing_for="} {
				if !strings.Contains(l, want) {
					t.Errorf("summary %q lacks %q", l, want)
				}
			}
			break
		}
	}
}

// Reads the device refuses (a register it does not have) are logged once,
// not at every poll, and their recovery once.
func TestRefusedReadLogsOnce(t *testing.T) {
	s := startSim(t, "")
	s.SetRegisters(modbus.Holding, 0, 5)
	logs := &testutil.SyncBuffer{}
	d := newDriver(t, s, "modbus: {address: ADDR}\ntelemetry:\n  ok: {register: 0}\n  later: {register: 500}\n", modbus.Options{Logger: logs.Logger(), LogEvery: time.Hour})
	ctx := ctxT(t)
	for range 50 {
		if _, err := d.Telemetry(ctx); !modbus.IsException(err) {
			t.Fatalf("want an exception, got %v", err)
		}
	}
	if n := countLines(logs.String(), "WARN", "telemetry read refused by the device"); n != 1 {
		t.Fatalf("%d lines for 50 refused polls, want 1:\n%s", n, logs)
	}
	s.SetRegisters(modbus.Holding, 500, 7)
	for range 3 {
		if _, err := d.Telemetry(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := countLines(logs.String(), "INFO", "telemetry reads work again"); n != 1 {
		t.Fatalf("recovery logged %d times:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "the device answers again") {
		t.Errorf("an exception is an answer, not an outage of the link:\n%s", logs)
	}
}

// The summary cadence holds while the backoff keeps the driver from
// dialling: the polls in between write it (the reconnect backoff grows to
// 30 s, and a summary only at the next attempt came up to a minute apart).
func TestDeviceDownSummaryBetweenAttempts(t *testing.T) {
	s := startSim(t, "")
	logs := &testutil.SyncBuffer{}
	d := newDriver(t, s, twoGroups, modbus.Options{Logger: logs.Logger(), LogEvery: time.Millisecond, Backoff: backoff.NewConstantBackOff(time.Hour)})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if _, err := d.Telemetry(ctx); err == nil {
		t.Fatal("telemetry from a stopped device")
	}
	testutil.Eventually(t, "a summary line while the next attempt is an hour away", func() bool {
		d.Telemetry(ctx)
		return strings.Contains(logs.String(), "attempts=")
	})
	if n := d.Stats().DialFailures; n != 1 {
		t.Fatalf("%d connection attempts, want 1 (the backoff is an hour)", n)
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "attempts=") {
			for _, want := range []string{"level=WARN", "cannot connect to the device; retrying", "retry_in=59m", "err=", "attempts=1"} {
				if !strings.Contains(l, want) {
					t.Errorf("summary %q lacks %q", l, want)
				}
			}
			break
		}
	}
}
