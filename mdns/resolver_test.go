package mdns

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/internal/testutil"
	"golang.org/x/net/dns/dnsmessage"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestLookupHost(t *testing.T) {
	resp := newResponder(t)
	resp.set("enapter-gateway.local", "2001:db8::10", "192.0.2.10")
	resp.setTTL(10)
	got, ttl, err := resp.resolver().LookupHost(context.Background(), "Enapter-Gateway.local.")
	if err != nil {
		t.Fatal(err)
	}
	if want := addrs("192.0.2.10", "2001:db8::10"); !slices.Equal(got, want) {
		t.Errorf("addrs = %v, want %v (IPv4 first)", got, want)
	}
	if ttl != 10*time.Second {
		t.Errorf("ttl = %v, want 10s", ttl)
	}

	// The query: one message, A and AAAA with the QU bit, a non-zero ID.
	q := resp.lastQuery()
	if q.Header.ID == 0 || q.Header.Response {
		t.Errorf("query header = %+v, want a non-zero ID and not a response", q.Header)
	}
	var types []dnsmessage.Type
	for _, question := range q.Questions {
		if question.Class != dnsmessage.ClassINET|0x8000 {
			t.Errorf("question class = %#x, want IN with the QU bit (0x8001)", uint16(question.Class))
		}
		if got := question.Name.String(); got != "enapter-gateway.local." {
			t.Errorf("question name = %q", got)
		}
		types = append(types, question.Type)
	}
	if !slices.Equal(types, []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA}) {
		t.Errorf("question types = %v, want A, AAAA", types)
	}
}

func TestLookupHostOnlyIPv4(t *testing.T) {
	resp := newResponder(t)
	resp.set("gw.local", "192.0.2.7")
	got, _, err := resp.resolver().LookupHost(context.Background(), "gw.local")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, addrs("192.0.2.7")) {
		t.Errorf("addrs = %v", got)
	}
}

func TestLookupHostTimeout(t *testing.T) {
	resp := newResponder(t)
	resp.setSilent(true)
	r := resp.resolver()
	r.Timeout = 100 * time.Millisecond
	start := time.Now()
	_, _, err := r.LookupHost(context.Background(), "enapter-gateway.local")
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("err = %v, want ErrNoAnswer", err)
	}
	if elapsed := time.Since(start); elapsed < r.Timeout || elapsed > 2*time.Second {
		t.Errorf("returned after %v, want about %v", elapsed, r.Timeout)
	}
	for _, want := range []string{`"enapter-gateway.local"`, resp.addr(), "100ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if resp.count() != 1 {
		t.Errorf("responder saw %d queries, want 1 (one-shot)", resp.count())
	}
}

func TestLookupHostUnknownNameTimesOut(t *testing.T) {
	resp := newResponder(t)
	resp.set("other.local", "192.0.2.1")
	r := resp.resolver()
	r.Timeout = 100 * time.Millisecond
	if _, _, err := r.LookupHost(context.Background(), "gw.local"); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("err = %v, want ErrNoAnswer", err)
	}
}

func TestLookupHostContextCancel(t *testing.T) {
	resp := newResponder(t)
	resp.setSilent(true)
	r := resp.resolver()
	r.Timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Bounded: cancel anyway, and the test fails on what the lookup says.
		testutil.Poll(testutil.WaitLimit, func() bool { return resp.count() > 0 })
		cancel()
	}()
	start := time.Now()
	_, _, err := r.LookupHost(ctx, "gw.local")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("returned %v after cancel", elapsed)
	}
	if !strings.Contains(err.Error(), "gw.local") {
		t.Errorf("error %q does not name the host", err)
	}

	// Already cancelled: nothing is sent.
	n := resp.count()
	if _, _, err := r.LookupHost(ctx, "gw.local"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if resp.count() != n {
		t.Error("a query was sent with a cancelled context")
	}
}

// pack builds a message for the garbage tests.
func pack(t testing.TB, m dnsmessage.Message) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func aRecord(name string, ip string, ttl uint32) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Class: dnsmessage.ClassINET, TTL: ttl},
		Body:   &dnsmessage.AResource{A: netip.MustParseAddr(ip).As4()},
	}
}

func garbageFor(t testing.TB) func(q dnsmessage.Message) [][]byte {
	return func(q dnsmessage.Message) [][]byte {
		id := q.Header.ID
		good := dnsmessage.Header{ID: id, Response: true}
		return [][]byte{
			{},
			[]byte("not dns at all"),
			{0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 1, 0, 1, 0, 0, 3, 'g', 'w'},
			// another ID
			pack(t, dnsmessage.Message{Header: dnsmessage.Header{ID: id + 1, Response: true}, Answers: []dnsmessage.Resource{aRecord("gw.local.", "198.51.100.1", 120)}}),
			// not a response
			pack(t, dnsmessage.Message{Header: dnsmessage.Header{ID: id}, Answers: []dnsmessage.Resource{aRecord("gw.local.", "198.51.100.2", 120)}}),
			// an error code
			pack(t, dnsmessage.Message{Header: dnsmessage.Header{ID: id, Response: true, RCode: dnsmessage.RCodeNameError}, Answers: []dnsmessage.Resource{aRecord("gw.local.", "198.51.100.3", 120)}}),
			// another name
			pack(t, dnsmessage.Message{Header: good, Answers: []dnsmessage.Resource{aRecord("printer.local.", "198.51.100.4", 120)}}),
			// the right name, another type, and an unspecified address
			pack(t, dnsmessage.Message{Header: good, Answers: []dnsmessage.Resource{
				{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("gw.local."), Class: dnsmessage.ClassINET, TTL: 120}, Body: &dnsmessage.TXTResource{TXT: []string{"x"}}},
				aRecord("gw.local.", "0.0.0.0", 120),
			}}),
			// truncated in the middle of a record
			pack(t, dnsmessage.Message{Header: good, Answers: []dnsmessage.Resource{aRecord("gw.local.", "198.51.100.5", 120)}})[:30],
		}
	}
}

func TestLookupHostIgnoresGarbage(t *testing.T) {
	resp := newResponder(t)
	resp.set("gw.local", "192.0.2.20")
	resp.setGarbage(false, garbageFor(t))
	got, _, err := resp.resolver().LookupHost(context.Background(), "gw.local")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, addrs("192.0.2.20")) {
		t.Errorf("addrs = %v, want the real answer after the garbage", got)
	}
}

func TestLookupHostOnlyGarbage(t *testing.T) {
	resp := newResponder(t)
	resp.set("gw.local", "192.0.2.20")
	resp.setGarbage(true, garbageFor(t))
	r := resp.resolver()
	r.Timeout = 200 * time.Millisecond
	if got, _, err := r.LookupHost(context.Background(), "gw.local"); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("got %v, %v; want ErrNoAnswer", got, err)
	}
}

func TestResolverConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Resolver
		want string
	}{
		{"both disabled", Resolver{Group4: Disabled, Group6: Disabled}, "both Group4 and Group6 are disabled"},
		{"host name", Resolver{Group4: "mdns.example:5353", Group6: Disabled}, "Group4"},
		{"no port", Resolver{Group4: "224.0.0.251", Group6: Disabled}, "Group4"},
		{"port 0", Resolver{Group4: "224.0.0.251:0", Group6: Disabled}, "Group4"},
		{"IPv6 as Group4", Resolver{Group4: "[::1]:5353", Group6: Disabled}, "IPv4"},
		{"IPv4 as Group6", Resolver{Group4: Disabled, Group6: "127.0.0.1:5353"}, "IPv6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.r.LookupHost(context.Background(), "gw.local")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	for _, name := range []string{"", ".", "a..local", ".local", strings.Repeat("a", 64) + ".local"} {
		r := Resolver{Group4: "127.0.0.1:9", Group6: Disabled}
		if _, _, err := r.LookupHost(context.Background(), name); err == nil || errors.Is(err, ErrNoAnswer) {
			t.Errorf("LookupHost(%q) = %v, want a bad-name error", name, err)
		}
	}
}

func TestResolverDefaults(t *testing.T) {
	gs, err := (&Resolver{}).groups()
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].addr.String() != DefaultGroup4 || gs[1].addr.String() != DefaultGroup6 {
		t.Errorf("groups = %v, want the two mDNS groups", gs)
	}
	gs, err = (&Resolver{Group6: "[ff02::fb%lo]:5353", Group4: Disabled}).groups()
	if err != nil || len(gs) != 1 || gs[0].addr.Addr().Zone() != "lo" {
		t.Errorf("groups with a zone = %v, %v", gs, err)
	}
}

func TestZoned(t *testing.T) {
	in := addrs("192.0.2.1", "fe80::1", "2001:db8::1", "fe80::2%eth1")
	if got := zoned(slices.Clone(in), "", ""); !slices.Equal(got, addrs("192.0.2.1", "2001:db8::1", "fe80::2%eth1")) {
		t.Errorf("no zone known: %v", got)
	}
	if got := zoned(slices.Clone(in), "eth0", "wlan0"); !slices.Equal(got, addrs("192.0.2.1", "fe80::1%eth0", "2001:db8::1", "fe80::2%eth1")) {
		t.Errorf("source zone: %v", got)
	}
	if got := zoned(slices.Clone(in), "", "wlan0"); !slices.Equal(got, addrs("192.0.2.1", "fe80::1%wlan0", "2001:db8::1", "fe80::2%eth1")) {
		t.Errorf("group zone: %v", got)
	}
}
