package can_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/driver/can"
	"github.com/edk-go/edk/driver/can/slcansim"
	"github.com/edk-go/edk/internal/testutil"
)

// openSim opens an SLCAN bus on one end of a pty pair with the fake
// adapter on the other.
func openSim(t *testing.T, opts slcansim.Options, cfg can.SLCANConfig) (*can.SLCAN, *slcansim.Adapter, func()) {
	t.Helper()
	host, dev, unplug := testutil.PtyPair(t)
	sim, err := slcansim.Start(dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	cfg.Device = host
	if cfg.Bitrate == 0 {
		cfg.Bitrate = 500000
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bus, err := can.OpenSLCAN(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return bus, sim, unplug
}

func receive(t *testing.T, bus can.Bus) can.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := bus.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSLCANOverPty(t *testing.T) {
	bus, sim, _ := openSim(t, slcansim.Options{}, can.SLCANConfig{Bitrate: 250000})
	if !sim.IsOpen() || sim.Bitrate() != "5" {
		t.Fatalf("adapter open %v, bitrate S%s; commands %q", sim.IsOpen(), sim.Bitrate(), sim.Commands())
	}
	ctx := context.Background()
	for _, tc := range []struct {
		id   uint32
		data string
		line string
	}{
		{0x213, "Hi", "t21324869"},
		{0x18FF50E5, "\x00\x01\x02\x03\x04\x05\x06\x07", "T18FF50E580001020304050607"},
		{0x7FF, "", "t7FF0"},
	} {
		f, err := can.NewFrame(tc.id, []byte(tc.data))
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Send(ctx, f); err != nil {
			t.Fatalf("send %v: %v", f, err)
		}
		if got := <-sim.Sent(); got != tc.line {
			t.Errorf("adapter got %q, want %q", got, tc.line)
		}
	}
	// frames from the bus, with noise between them that is skipped
	if err := sim.Inject("t1232ABCD\rgarbage\r\x00\x01\rT1ABCDEF081122334455667788\rt12\r" + strings.Repeat("x", 200) + "\rt4001FF\r"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"123 [2] AB CD", "1ABCDEF0 [8] 11 22 33 44 55 66 77 88", "400 [1] FF"} {
		if got := receive(t, bus).String(); got != want {
			t.Errorf("received %q, want %q", got, want)
		}
	}
	if n := bus.IgnoredLines(); n != 4 {
		t.Errorf("%d lines ignored, want 4 (garbage, binary noise, a short frame, an overlong line)", n)
	}
}

func TestSLCANRefusedAndGone(t *testing.T) {
	bus, sim, unplug := openSim(t, slcansim.Options{}, can.SLCANConfig{})
	ctx := context.Background()
	if err := bus.Send(ctx, can.Frame{ID: 0x800, Data: []byte{}}); err == nil || !strings.Contains(err.Error(), "11 bits") {
		t.Errorf("standard id 0x800: %v", err)
	}
	if err := bus.Send(ctx, can.Frame{ID: 1, Len: 9, Data: make([]byte, 9)}); err == nil || !strings.Contains(err.Error(), "at most 8") {
		t.Errorf("9 bytes: %v", err)
	}
	// the adapter answers BEL: that frame's error
	f, _ := can.NewFrame(0x100, []byte{1})
	sim.SetBusOff(true)
	if err := bus.Send(ctx, f); !errors.Is(err, can.ErrRefused) {
		t.Errorf("send to a bus-off adapter: %v", err)
	}
	sim.SetBusOff(false)
	if err := bus.Send(ctx, f); err != nil {
		t.Fatal(err)
	}
	// unplugged: Receive, then Send, fail saying so
	if err := sim.InjectFrame(f); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, bus); got.ID != 0x100 {
		t.Errorf("frame before the unplug: %v", got)
	}
	unplug()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := bus.Receive(rctx); err == nil || !strings.Contains(err.Error(), "adapter gone") {
		t.Errorf("Receive after unplug: %v", err)
	}
	if err := bus.Send(ctx, f); err == nil || !strings.Contains(err.Error(), "adapter gone") {
		t.Errorf("Send after unplug: %v", err)
	}
}

func TestSLCANSilentAdapter(t *testing.T) {
	bus, sim, _ := openSim(t, slcansim.Options{Silent: true}, can.SLCANConfig{AnswerTimeout: 50 * time.Millisecond})
	// nothing to wait for but the adapter's state
	testutil.Eventually(t, "the silent adapter's channel open", sim.IsOpen)
	f, _ := can.NewFrame(0x10, []byte("ab"))
	for range 3 {
		if err := bus.Send(context.Background(), f); err != nil {
			t.Fatal(err)
		}
		if got := <-sim.Sent(); got != "t01026162" {
			t.Errorf("adapter got %q", got)
		}
	}
}

func TestSLCANCloseEndsReceive(t *testing.T) {
	bus, _, _ := openSim(t, slcansim.Options{}, can.SLCANConfig{})
	errc := make(chan error, 1)
	go func() {
		_, err := bus.Receive(context.Background())
		errc <- err
	}()
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, can.ErrClosed) {
		t.Errorf("Receive after Close: %v", err)
	}
	if err := bus.Send(context.Background(), can.Frame{ID: 1, Data: []byte{}}); !errors.Is(err, can.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}
