package mdns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The mDNS groups (RFC 6762 §3) and the default time to wait for an answer.
const (
	DefaultGroup4  = "224.0.0.251:5353"
	DefaultGroup6  = "[ff02::fb]:5353"
	DefaultTimeout = 2 * time.Second
)

// Disabled, as Group4 or Group6, turns that address family off.
const Disabled = "-"

// ErrNoAnswer means that no responder answered for the name in time. The
// returned error wraps it and names the name and the groups asked.
var ErrNoAnswer = errors.New("no mDNS answer")

// Resolver sends one-shot mDNS queries. The zero value asks both default
// groups and waits DefaultTimeout. A Resolver is safe for concurrent use;
// set its fields before the first lookup.
type Resolver struct {
	// Group4 is the IPv4 address and port queries are sent to: "" means
	// DefaultGroup4, Disabled turns IPv4 off. Tests set a unicast address
	// such as "127.0.0.1:40123", where a responder listens.
	Group4 string
	// Group6 is the IPv6 address and port: "" means DefaultGroup6, Disabled
	// turns IPv6 off. "[ff02::fb%eth0]:5353" sends by the interface eth0;
	// without a zone the operating system picks the interface.
	Group6 string
	// Timeout bounds each lookup; 0 means DefaultTimeout.
	Timeout time.Duration
}

// group is one destination of a query.
type group struct {
	addr    netip.AddrPort
	network string // "udp4" or "udp6"
}

func (r *Resolver) groups() ([]group, error) {
	var gs []group
	for _, g := range []struct{ value, def, network, field string }{
		{r.Group4, DefaultGroup4, "udp4", "Group4"},
		{r.Group6, DefaultGroup6, "udp6", "Group6"},
	} {
		s := g.value
		switch s {
		case Disabled:
			continue
		case "":
			s = g.def
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("mdns: %s %q: want an IP address and port such as %q: %w", g.field, s, g.def, err)
		}
		if ap.Port() == 0 || (g.network == "udp4") != ap.Addr().Unmap().Is4() {
			return nil, fmt.Errorf("mdns: %s %q: want an %s address and a port, such as %q", g.field, s, map[string]string{"udp4": "IPv4", "udp6": "IPv6"}[g.network], g.def)
		}
		if g.network == "udp4" {
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		gs = append(gs, group{addr: ap, network: g.network})
	}
	if len(gs) == 0 {
		return nil, errors.New("mdns: both Group4 and Group6 are disabled; enable at least one")
	}
	return gs, nil
}

func groupList(gs []group) string {
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = g.addr.String()
	}
	return strings.Join(s, ", ")
}

// canonical returns name in lower case with one trailing dot.
func canonical(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if n == "" || strings.HasSuffix(n, ".") || strings.HasPrefix(n, ".") || strings.Contains(n, "..") {
		return "", fmt.Errorf("mdns: %q is not a host name", name)
	}
	return n + ".", nil
}

// answer is one usable reply.
type answer struct {
	addrs []netip.Addr
	ttl   uint32
}

// LookupHost asks the configured groups once for the A and AAAA records of
// name and returns the addresses of the first reply that has any (IPv4
// first) and the smallest TTL among the records used. Replies may come from
// any address; replies that are malformed, carry another query ID or say
// nothing about name are ignored. With no usable reply within Timeout the
// error wraps ErrNoAnswer; when ctx ends first it wraps ctx.Err().
//
// An IPv6 link-local address in an answer is returned with the zone of the
// interface the reply came in on; one that came over IPv4, where the
// interface is unknown, is left out.
func (r *Resolver) LookupHost(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	fqdn, err := canonical(name)
	if err != nil {
		return nil, 0, err
	}
	gs, err := r.groups()
	if err != nil {
		return nil, 0, err
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	id := uint16(rand.N(0xffff)) + 1 // 0 is what multicast replies carry
	query, err := buildQuery(id, fqdn)
	if err != nil {
		return nil, 0, fmt.Errorf("mdns: %q is not a host name: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("mdns: resolve %q: %w", name, err)
	}

	answers := make(chan answer, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var conns []*net.UDPConn
	defer func() {
		close(done)
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	var sendErrs []error
	for _, g := range gs {
		c, err := send(g, query)
		if err != nil {
			sendErrs = append(sendErrs, err)
			continue
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			receive(c, g, id, fqdn, answers, done)
		}()
	}
	if len(conns) == 0 {
		return nil, 0, fmt.Errorf("mdns: resolve %q: cannot send a query: %w", name, errors.Join(sendErrs...))
	}

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-answers:
		return a.addrs, time.Duration(a.ttl) * time.Second, nil
	case <-timer.C:
		if len(sendErrs) > 0 {
			// Some groups could not be asked at all: say why.
			return nil, 0, fmt.Errorf("mdns: resolve %q: no responder answered %s within %s (%v): %w", name, groupList(gs), timeout, errors.Join(sendErrs...), ErrNoAnswer)
		}
		return nil, 0, fmt.Errorf("mdns: resolve %q: no responder answered %s within %s: %w", name, groupList(gs), timeout, ErrNoAnswer)
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("mdns: resolve %q: %w", name, ctx.Err())
	}
}

// send opens an unbound socket of the group's family and sends the query
// from it; replies come back to the socket's ephemeral port.
func send(g group, query []byte) (*net.UDPConn, error) {
	c, err := net.ListenUDP(g.network, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s socket: %w", g.network, err)
	}
	if g.addr.Addr().IsMulticast() {
		// RFC 6762 §11: mDNS packets carry IP TTL 255. Best effort: the
		// default of 1 also stays on the link.
		if g.network == "udp4" {
			_ = ipv4.NewPacketConn(c).SetMulticastTTL(255)
		} else {
			_ = ipv6.NewPacketConn(c).SetMulticastHopLimit(255)
		}
	}
	if _, err := c.WriteToUDPAddrPort(query, g.addr); err != nil {
		c.Close()
		return nil, fmt.Errorf("send to %s: %w", g.addr, err)
	}
	return c, nil
}

// receive reads replies on c until it is closed and hands the first usable
// one to answers.
func receive(c *net.UDPConn, g group, id uint16, fqdn string, answers chan<- answer, done <-chan struct{}) {
	buf := make([]byte, 9000) // RFC 6762 §17: up to the interface MTU
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors (port unreachable) and the like: keep listening
			// until the lookup ends, but not in a tight loop.
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		addrs, ttl, ok := parseReply(buf[:n], id, fqdn)
		if !ok {
			continue
		}
		if addrs = zoned(addrs, src.Addr().Zone(), g.addr.Addr().Zone()); len(addrs) == 0 {
			continue
		}
		select {
		case answers <- answer{addrs, ttl}:
		case <-done:
		}
		return
	}
}

// zoned gives IPv6 link-local addresses the zone of the interface the reply
// came in on (srcZone, else the group's zone) and drops those for which no
// zone is known: they cannot be dialled.
func zoned(addrs []netip.Addr, srcZone, groupZone string) []netip.Addr {
	zone := srcZone
	if zone == "" {
		zone = groupZone
	}
	out := addrs[:0]
	for _, a := range addrs {
		if a.Is6() && !a.Is4In6() && a.IsLinkLocalUnicast() && a.Zone() == "" {
			if zone == "" {
				continue
			}
			a = a.WithZone(zone)
		}
		out = append(out, a)
	}
	return out
}
