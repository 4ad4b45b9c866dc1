package testutil

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// MDNSResponder answers mDNS A queries on 127.0.0.1, by unicast to the
// asker: point mdns.Resolver.Group4 at Addr (and disable IPv6) so that a
// test never sends multicast out of a real interface.
type MDNSResponder struct {
	Addr string

	conn  *net.UDPConn
	mu    sync.Mutex
	hosts map[string]netip.Addr // lower-case name with trailing dot
}

// StartMDNSResponder starts a responder that knows no names yet; Set adds them.
func StartMDNSResponder(t testing.TB) *MDNSResponder {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen for mDNS queries: %v", err)
	}
	r := &MDNSResponder{Addr: c.LocalAddr().String(), conn: c, hosts: map[string]netip.Addr{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.serve() }()
	t.Cleanup(func() { c.Close(); wg.Wait() })
	return r
}

// Set makes the responder answer name with addr (e.g. "gw.local", "127.0.0.2").
func (r *MDNSResponder) Set(name, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts[strings.ToLower(strings.TrimSuffix(name, "."))+"."] = netip.MustParseAddr(addr)
}

func (r *MDNSResponder) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		var q dnsmessage.Message
		if q.Unpack(buf[:n]) != nil || q.Header.Response {
			continue
		}
		reply := dnsmessage.Message{Header: dnsmessage.Header{ID: q.Header.ID, Response: true, Authoritative: true}}
		for _, question := range q.Questions {
			r.mu.Lock()
			addr, ok := r.hosts[strings.ToLower(question.Name.String())]
			r.mu.Unlock()
			if !ok || question.Type != dnsmessage.TypeA || !addr.Is4() {
				continue
			}
			reply.Answers = append(reply.Answers, dnsmessage.Resource{
				Header: dnsmessage.ResourceHeader{Name: question.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 120},
				Body:   &dnsmessage.AResource{A: addr.As4()},
			})
		}
		if len(reply.Answers) == 0 {
			continue
		}
		if b, err := reply.Pack(); err == nil {
			_, _ = r.conn.WriteToUDP(b, from)
		}
	}
}
