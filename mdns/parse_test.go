package mdns

import (
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func TestParseReply(t *testing.T) {
	const id = 0x1234
	hdr := dnsmessage.Header{ID: id, Response: true, Authoritative: true}
	aaaa := func(name, ip string, ttl uint32) dnsmessage.Resource {
		return dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Class: dnsmessage.ClassINET | 0x8000, TTL: ttl},
			Body:   &dnsmessage.AAAAResource{AAAA: netip.MustParseAddr(ip).As16()},
		}
	}
	cname := func(name, target string, ttl uint32) dnsmessage.Resource {
		return dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Class: dnsmessage.ClassINET, TTL: ttl},
			Body:   &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(target)},
		}
	}
	for _, tc := range []struct {
		name  string
		msg   dnsmessage.Message
		addrs []netip.Addr
		ttl   uint32
	}{
		{
			name:  "answers and additionals, smallest TTL, IPv4 first, no duplicates",
			msg:   dnsmessage.Message{Header: hdr, Answers: []dnsmessage.Resource{aaaa("GW.local.", "2001:db8::1", 120), aRecord("gw.local.", "192.0.2.1", 10)}, Additionals: []dnsmessage.Resource{aRecord("gw.local.", "192.0.2.1", 10), aRecord("gw.local.", "192.0.2.2", 60)}},
			addrs: addrs("192.0.2.1", "192.0.2.2", "2001:db8::1"),
			ttl:   10,
		},
		{
			name:  "ID 0 as multicast responders send",
			msg:   dnsmessage.Message{Header: dnsmessage.Header{Response: true}, Answers: []dnsmessage.Resource{aRecord("gw.local.", "192.0.2.1", 0)}},
			addrs: addrs("192.0.2.1"),
			ttl:   0,
		},
		{
			name:  "CNAME in the same message, after the address",
			msg:   dnsmessage.Message{Header: hdr, Answers: []dnsmessage.Resource{aRecord("real.local.", "192.0.2.9", 100), cname("gw.local.", "real.local.", 50)}},
			addrs: addrs("192.0.2.9"),
			ttl:   50,
		},
		{
			name: "CNAME loop and other names",
			msg:  dnsmessage.Message{Header: hdr, Answers: []dnsmessage.Resource{cname("gw.local.", "x.local.", 50), cname("x.local.", "gw.local.", 50), aRecord("y.local.", "192.0.2.9", 100)}},
		},
		{
			name: "records of another class",
			msg: dnsmessage.Message{Header: hdr, Answers: []dnsmessage.Resource{{
				Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("gw.local."), Class: dnsmessage.ClassCHAOS, TTL: 5},
				Body:   &dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}},
			}}},
		},
		{
			name: "multicast and broadcast addresses",
			msg:  dnsmessage.Message{Header: hdr, Answers: []dnsmessage.Resource{aRecord("gw.local.", "224.0.0.251", 5), aRecord("gw.local.", "255.255.255.255", 5), aaaa("gw.local.", "::", 5)}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.msg.Pack()
			if err != nil {
				t.Fatal(err)
			}
			got, ttl, ok := parseReply(b, id, "gw.local.")
			if ok != (tc.addrs != nil) || !slices.Equal(got, tc.addrs) || ttl != tc.ttl {
				t.Errorf("parseReply = %v, %d, %v; want %v, %d", got, ttl, ok, tc.addrs, tc.ttl)
			}
		})
	}
}

func TestBuildQueryRoundTrip(t *testing.T) {
	q, err := buildQuery(7, "gw.local.")
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil {
		t.Fatal(err)
	}
	if m.Header.ID != 7 || len(m.Questions) != 2 || len(m.Answers)+len(m.Authorities)+len(m.Additionals) != 0 {
		t.Errorf("query = %+v", m)
	}
}

// FuzzParseReply checks that no reply, however malformed, makes parseReply
// panic or return something unusable.
func FuzzParseReply(f *testing.F) {
	for _, m := range []dnsmessage.Message{
		{Header: dnsmessage.Header{ID: 1, Response: true}, Answers: []dnsmessage.Resource{aRecord("gw.local.", "192.0.2.1", 120)}},
		{Header: dnsmessage.Header{Response: true}, Answers: []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("gw.local."), Class: dnsmessage.ClassINET, TTL: 5},
			Body:   &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("x.local.")},
		}, aRecord("x.local.", "192.0.2.2", 10)}},
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	q, _ := buildQuery(1, "gw.local.")
	f.Add(q)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, _, ok := parseReply(msg, 1, "gw.local.")
		if ok != (len(got) > 0) {
			t.Fatalf("ok = %v with %d addresses", ok, len(got))
		}
		for i, a := range got {
			if !usable(a) {
				t.Fatalf("unusable address %v", a)
			}
			if i > 0 && got[i-1].Is6() && a.Is4() {
				t.Fatalf("IPv4 after IPv6: %v", got)
			}
		}
	})
}
