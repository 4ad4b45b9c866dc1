package mdns

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edk-go/edk/internal/testutil"
)

// fakeClock is the cache's injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestCache(resp *responder) (*Cache, *fakeClock) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := NewCache(resp.resolver())
	c.now = clock.now
	return c, clock
}

func TestCacheHonoursTTL(t *testing.T) {
	resp := newResponder(t)
	resp.set("gw.local", "192.0.2.1")
	resp.setTTL(10)
	c, clock := newTestCache(resp)
	ctx := context.Background()

	lookup := func(want string, queries int) {
		t.Helper()
		got, err := c.Lookup(ctx, "gw.local")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, addrs(want)) {
			t.Errorf("Lookup = %v, want %v", got, want)
		}
		if resp.count() != queries {
			t.Errorf("responder saw %d queries, want %d", resp.count(), queries)
		}
	}
	lookup("192.0.2.1", 1)
	clock.advance(9 * time.Second)
	resp.set("gw.local", "192.0.2.2")
	lookup("192.0.2.1", 1) // still fresh: not asked
	clock.advance(time.Second)
	lookup("192.0.2.2", 2) // expired at exactly the TTL
	lookup("192.0.2.2", 2)

	// Refresh always asks.
	resp.set("gw.local", "192.0.2.3")
	got, err := c.Refresh(ctx, "GW.local.")
	if err != nil || !slices.Equal(got, addrs("192.0.2.3")) || resp.count() != 3 {
		t.Fatalf("Refresh = %v, %v after %d queries", got, err, resp.count())
	}
	lookup("192.0.2.3", 3)

	// The caller may change what it was given.
	got[0] = netip.MustParseAddr("203.0.113.1")
	lookup("192.0.2.3", 3)
}

func TestCacheTTLZeroIsNotCached(t *testing.T) {
	resp := newResponder(t)
	resp.set("gw.local", "192.0.2.1")
	resp.setTTL(120)
	c, _ := newTestCache(resp)
	ctx := context.Background()
	if _, err := c.Lookup(ctx, "gw.local"); err != nil {
		t.Fatal(err)
	}
	resp.setTTL(0)
	if _, err := c.Refresh(ctx, "gw.local"); err != nil {
		t.Fatal(err)
	}
	// TTL 0 also dropped the earlier answer.
	for i := range 2 {
		if _, err := c.Lookup(ctx, "gw.local"); err != nil {
			t.Fatal(err)
		}
		if want := 3 + i; resp.count() != want {
			t.Errorf("responder saw %d queries, want %d", resp.count(), want)
		}
	}
}

func TestCacheFailedRefreshKeepsEntry(t *testing.T) {
	resp := newResponder(t)
	resp.set("gw.local", "192.0.2.1")
	c, clock := newTestCache(resp)
	c.Resolver.Timeout = 100 * time.Millisecond
	ctx := context.Background()
	if _, err := c.Lookup(ctx, "gw.local"); err != nil {
		t.Fatal(err)
	}
	resp.setSilent(true)
	if _, err := c.Refresh(ctx, "gw.local"); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("Refresh err = %v, want ErrNoAnswer", err)
	}
	if got, err := c.Lookup(ctx, "gw.local"); err != nil || !slices.Equal(got, addrs("192.0.2.1")) {
		t.Errorf("Lookup after failed refresh = %v, %v", got, err)
	}
	clock.advance(time.Hour)
	if _, err := c.Lookup(ctx, "gw.local"); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("Lookup after expiry = %v, want ErrNoAnswer", err)
	}
}

func TestCacheConcurrent(t *testing.T) {
	resp := newResponder(t)
	resp.set("gw.local", "192.0.2.1")
	c, clock := newTestCache(resp)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for range 5 {
				var err error
				if i%2 == 0 {
					_, err = c.Lookup(context.Background(), "gw.local")
				} else {
					_, err = c.Refresh(context.Background(), "gw.local")
				}
				if err != nil {
					t.Error(err)
				}
				clock.advance(time.Second)
			}
		})
	}
	wg.Wait()
}

func TestZeroCache(t *testing.T) {
	resp := newResponder(t)
	resp.set("gw.local", "192.0.2.1")
	c := &Cache{Resolver: resp.resolver()}
	for range 2 {
		if got, err := c.Lookup(context.Background(), "gw.local"); err != nil || !slices.Equal(got, addrs("192.0.2.1")) {
			t.Fatalf("Lookup = %v, %v", got, err)
		}
	}
	if resp.count() != 1 {
		t.Errorf("responder saw %d queries, want 1", resp.count())
	}
}

// systemStub is a System resolver that knows some names and counts calls.
type systemStub struct {
	mu    sync.Mutex
	known map[string]string
	calls int
}

func (s *systemStub) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if a, ok := s.known[host]; ok {
		return addrs(a), nil
	}
	return nil, errors.New("no such host")
}

func (s *systemStub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestResolveHost(t *testing.T) {
	resp := newResponder(t)
	resp.set("enapter-gateway.local", "192.0.2.50", "2001:db8::50")
	sys := &systemStub{known: map[string]string{"known.local": "192.0.2.99"}}
	c, _ := newTestCache(resp)
	c.System = sys.lookup
	var logs bytes.Buffer
	c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()

	// IP addresses and names outside .local pass through untouched, with
	// no lookup at all.
	for _, host := range []string{"192.0.2.1", "::1", "fe80::1%eth0", "broker.example.com", "localhost", "local", "gateway.local.example.com"} {
		got, err := ResolveHost(ctx, host, c)
		if err != nil || got != host {
			t.Errorf("ResolveHost(%q) = %q, %v; want it unchanged", host, got, err)
		}
	}
	if sys.count() != 0 || resp.count() != 0 {
		t.Fatalf("passing through cost %d system and %d mDNS lookups", sys.count(), resp.count())
	}

	// A .local name the system resolves is left to the dialer.
	if got, err := ResolveHost(ctx, "known.local", c); err != nil || got != "known.local" {
		t.Errorf("ResolveHost(known.local) = %q, %v", got, err)
	}
	if sys.count() != 1 || resp.count() != 0 {
		t.Errorf("system lookups %d, mDNS %d; want 1, 0", sys.count(), resp.count())
	}

	// One it does not: mDNS, asked again on every call (every reconnect).
	for i := range 2 {
		got, err := ResolveHost(ctx, "Enapter-Gateway.local", c)
		if err != nil || got != "192.0.2.50" {
			t.Fatalf("ResolveHost = %q, %v; want the IPv4 address", got, err)
		}
		if resp.count() != i+1 {
			t.Errorf("mDNS queries = %d, want %d", resp.count(), i+1)
		}
	}
	if !strings.Contains(logs.String(), "resolved by mDNS") || !strings.Contains(logs.String(), "Enapter-Gateway.local") {
		t.Errorf("log does not say what was resolved:\n%s", logs.String())
	}

	// No answer now, but the last one is still within its TTL.
	resp.setSilent(true)
	c.Resolver.Timeout = 100 * time.Millisecond
	if got, err := ResolveHost(ctx, "enapter-gateway.local", c); err != nil || got != "192.0.2.50" {
		t.Errorf("ResolveHost with a fresh cached answer = %q, %v", got, err)
	}

	// Neither resolver knows it: the error names the host and both causes.
	_, err := ResolveHost(ctx, "missing.local", c)
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("err = %v, want ErrNoAnswer", err)
	}
	for _, want := range []string{`"missing.local"`, "system resolver: no such host", resp.addr()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}

	// Without a cache there is no mDNS: the name is left to the dialer.
	if got, err := ResolveHost(ctx, "missing.local", nil); err != nil || got != "missing.local" {
		t.Errorf("ResolveHost with nil cache = %q, %v", got, err)
	}
}

func TestResolveHostIPv6Only(t *testing.T) {
	resp := newResponder(t)
	resp.set("gw.local", "2001:db8::7")
	c, _ := newTestCache(resp)
	c.System = (&systemStub{}).lookup
	if got, err := ResolveHost(context.Background(), "gw.local", c); err != nil || got != "2001:db8::7" {
		t.Errorf("ResolveHost = %q, %v", got, err)
	}
}

func TestResolveHostSystemTimeout(t *testing.T) {
	resp := newResponder(t)
	resp.set("gw.local", "192.0.2.8")
	c, _ := newTestCache(resp)
	c.SystemTimeout = 50 * time.Millisecond
	c.System = func(ctx context.Context, host string) ([]netip.Addr, error) {
		<-ctx.Done() // a system resolver that hangs until its deadline
		return nil, ctx.Err()
	}
	if got, err := ResolveHost(context.Background(), "gw.local", c); err != nil || got != "192.0.2.8" {
		t.Errorf("ResolveHost = %q, %v", got, err)
	}
}

func TestResolveHostContextCancel(t *testing.T) {
	resp := newResponder(t)
	resp.setSilent(true)
	c, _ := newTestCache(resp)
	c.Resolver.Timeout = time.Minute
	c.System = (&systemStub{}).lookup
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Bounded: cancel anyway, and the test fails on what the lookup says.
		testutil.Poll(testutil.WaitLimit, func() bool { return resp.count() > 0 })
		cancel()
	}()
	start := time.Now()
	if _, err := ResolveHost(ctx, "gw.local", c); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Error("ResolveHost did not return promptly after cancel")
	}
}

func TestIsLocal(t *testing.T) {
	for host, want := range map[string]bool{
		"gw.local": true, "GW.LOCAL.": true, "a.b.local": true,
		"local": false, "gw.localdomain": false, "gw.local.example": false, "": false, "192.0.2.1": false,
	} {
		if got := IsLocal(host); got != want {
			t.Errorf("IsLocal(%q) = %v, want %v", host, got, want)
		}
	}
}
