package faultproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edk-go/edk/internal/faultproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every wait in these tests; they never sleep.
const waitLimit = 10 * time.Second

// startEcho starts a TCP echo server on 127.0.0.1 and stops it, with its
// goroutines, when the test ends.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads it back from the echo server.
func roundTrip(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

func TestForwards(t *testing.T) {
	p := faultproxy.Start(t, startEcho(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("hello"))
	big := bytes.Repeat([]byte("0123456789"), 20_000) // more than one chunk
	roundTrip(t, c, big)
	if p.Accepted() != 1 || p.Active() != 1 {
		t.Fatalf("accepted %d, active %d; want 1, 1", p.Accepted(), p.Active())
	}
}

func TestCut(t *testing.T) {
	p := faultproxy.Start(t, startEcho(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("before"))
	p.Cut()
	if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("read after Cut: %v, want the connection closed", err)
	}
	if p.CutCount() != 1 {
		t.Fatalf("CutCount = %d, want 1", p.CutCount())
	}
	// New connections still go through.
	roundTrip(t, dial(t, p.Addr()), []byte("after"))
	if p.Accepted() != 2 {
		t.Fatalf("accepted %d, want 2", p.Accepted())
	}
}

func TestHangThenResume(t *testing.T) {
	p := faultproxy.Start(t, startEcho(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("before"))
	p.Hang()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatalf("write while hung: %v", err)
	}
	// Nothing comes back, and the link is neither closed nor reset: the read
	// times out. (The short deadline bounds how long we look, not a sleep.)
	if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read while hung: %v, want a timeout", err)
	}
	// A connection made while hung is accepted but hangs too.
	c2 := dial(t, p.Addr())
	if _, err := c2.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	p.Resume()
	got := make([]byte, len("held"))
	if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after Resume read %q, %v; want the held bytes", got, err)
	}
	if err := c2.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c2, got); err != nil || string(got) != "late" {
		t.Fatalf("connection made while hung read %q, %v", got, err)
	}
	roundTrip(t, c, []byte("after"))
	roundTrip(t, dial(t, p.Addr()), []byte("new"))
}

func TestHungLinkHoldsClose(t *testing.T) {
	p := faultproxy.Start(t, startEcho(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("x"))
	p.Hang()
	// The proxy keeps the link open while hung even if the client leaves...
	_ = c.Close()
	if p.Active() != 1 {
		t.Fatalf("active = %d while hung, want 1", p.Active())
	}
	// ...and the test's cleanup still stops every goroutine (goleak checks).
}

func TestLatency(t *testing.T) {
	const latency = 50 * time.Millisecond
	p := faultproxy.Start(t, startEcho(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("warm"))
	p.SetLatency(latency)
	start := time.Now()
	roundTrip(t, c, []byte("slow"))
	// Delayed on the way there and back: at least 2×latency.
	if took := time.Since(start); took < 2*latency {
		t.Fatalf("round trip took %v, want at least %v", took, 2*latency)
	}
	p.SetLatency(0)
	roundTrip(t, c, []byte("fast"))
}

func TestThrottle(t *testing.T) {
	const rate = 20_000 // bytes per second
	p := faultproxy.Start(t, startEcho(t))
	c := dial(t, p.Addr())
	p.SetThrottle(rate)
	msg := bytes.Repeat([]byte("t"), rate/4) // at least 250 ms each way
	start := time.Now()
	roundTrip(t, c, msg)
	if took, least := time.Since(start), 250*time.Millisecond; took < least {
		t.Fatalf("throttled round trip took %v, want at least %v", took, least)
	}
	p.SetThrottle(0)
	roundTrip(t, c, []byte("free"))
}
