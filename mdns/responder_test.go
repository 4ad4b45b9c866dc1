package mdns

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// responder is an in-process mDNS responder on 127.0.0.1: it parses each
// query with dnsmessage and answers by unicast to the query's source.
type responder struct {
	conn *net.UDPConn
	wg   sync.WaitGroup

	mu     sync.Mutex
	hosts  map[string][]netip.Addr // lower-case name with trailing dot
	ttl    uint32
	silent bool
	// garbage makes the replies sent before the real answer (or instead
	// of it, with noAnswer).
	garbage func(q dnsmessage.Message) [][]byte
	// noAnswer sends only the garbage.
	noAnswer bool
	queries  []dnsmessage.Message
}

func newResponder(t testing.TB) *responder {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return serveResponder(t, c)
}

// serveResponder answers the queries that arrive on c until the test ends.
func serveResponder(t testing.TB, c *net.UDPConn) *responder {
	r := &responder{conn: c, hosts: map[string][]netip.Addr{}, ttl: 120}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() {
		c.Close()
		r.wg.Wait()
	})
	return r
}

// addr is what Resolver.Group4 should be set to.
func (r *responder) addr() string { return r.conn.LocalAddr().String() }

// resolver returns a Resolver that asks only this responder: never a real
// multicast group, and no IPv6.
func (r *responder) resolver() *Resolver {
	return &Resolver{Group4: r.addr(), Group6: Disabled, Timeout: defaultTestTimeout}
}

func (r *responder) set(name string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	r.hosts[strings.ToLower(name)+"."] = as
}

func (r *responder) setTTL(ttl uint32) {
	r.mu.Lock()
	r.ttl = ttl
	r.mu.Unlock()
}

func (r *responder) setSilent(s bool) {
	r.mu.Lock()
	r.silent = s
	r.mu.Unlock()
}

func (r *responder) setGarbage(only bool, f func(q dnsmessage.Message) [][]byte) {
	r.mu.Lock()
	r.garbage, r.noAnswer = f, only
	r.mu.Unlock()
}

func (r *responder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queries)
}

func (r *responder) lastQuery() dnsmessage.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queries[len(r.queries)-1]
}

func (r *responder) serve() {
	defer r.wg.Done()
	buf := make([]byte, 9000)
	for {
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var q dnsmessage.Message
		if err := q.Unpack(buf[:n]); err != nil || q.Header.Response {
			continue
		}
		r.mu.Lock()
		r.queries = append(r.queries, q)
		silent, noAnswer, garbage := r.silent, r.noAnswer, r.garbage
		var reply []byte
		if !silent && !noAnswer {
			reply = r.answerLocked(q)
		}
		r.mu.Unlock()
		if silent {
			continue
		}
		if garbage != nil {
			for _, g := range garbage(q) {
				r.conn.WriteToUDPAddrPort(g, src)
			}
		}
		if reply != nil {
			r.conn.WriteToUDPAddrPort(reply, src)
		}
	}
}

// answerLocked builds the unicast reply to q, the way avahi answers a
// one-shot query: same ID, the questions echoed, records with the
// cache-flush bit. Names it does not know get no reply.
func (r *responder) answerLocked(q dnsmessage.Message) []byte {
	reply := dnsmessage.Message{Header: dnsmessage.Header{ID: q.Header.ID, Response: true, Authoritative: true}}
	for _, question := range q.Questions {
		addrs := r.hosts[strings.ToLower(question.Name.String())]
		reply.Questions = append(reply.Questions, dnsmessage.Question{Name: question.Name, Type: question.Type, Class: question.Class & classMask})
		for _, a := range addrs {
			h := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET | 0x8000, TTL: r.ttl}
			switch {
			case a.Is4() && question.Type == dnsmessage.TypeA:
				reply.Answers = append(reply.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.As4()}})
			case a.Is6() && question.Type == dnsmessage.TypeAAAA:
				reply.Answers = append(reply.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
			}
		}
	}
	if len(reply.Answers) == 0 {
		return nil
	}
	b, err := reply.Pack()
	if err != nil {
		panic(err)
	}
	return b
}
