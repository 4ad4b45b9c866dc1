package mdns

import (
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// classMask strips the mDNS cache-flush bit (answers) or unicast-response
// bit (questions) from a class (RFC 6762 §10.2, §18.12).
const classMask = 0x7fff

// qu is the unicast-response bit of a question's class (RFC 6762 §5.4).
const qu = 0x8000

// maxAliases bounds how many CNAME links are followed inside one answer.
const maxAliases = 8

// buildQuery packs one query with an A and an AAAA question for fqdn (a
// name with its trailing dot), both with the QU bit set.
func buildQuery(id uint16, fqdn string) ([]byte, error) {
	name, err := dnsmessage.NewName(fqdn)
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 64), dnsmessage.Header{ID: id})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	for _, t := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
		q := dnsmessage.Question{Name: name, Type: t, Class: dnsmessage.ClassINET | qu}
		if err := b.Question(q); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// record is one answer or additional record that parseReply may use.
type record struct {
	owner  string // lower case, with the trailing dot
	addr   netip.Addr
	target string // CNAME target, lower case; empty for A/AAAA
	ttl    uint32
}

// parseReply reads a reply to the query with the given id for fqdn (lower
// case, trailing dot). It returns the A and AAAA addresses of fqdn, found in
// the answer and additional sections directly or through CNAMEs within the
// message, and the smallest TTL of the records used. ok is false when the
// message is not a usable reply: not a response, another ID (0 is accepted,
// as multicast responders send it), an error code, malformed, or no address
// for the name. Records about other names and of other types are ignored.
func parseReply(msg []byte, id uint16, fqdn string) (addrs []netip.Addr, ttl uint32, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || !h.Response || (h.ID != id && h.ID != 0) || h.RCode != dnsmessage.RCodeSuccess {
		return nil, 0, false
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, 0, false
	}
	var recs []record
	if recs, err = readSection(&p, recs, p.AnswerHeader, p.SkipAnswer); err != nil {
		return nil, 0, false
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return nil, 0, false
	}
	if recs, err = readSection(&p, recs, p.AdditionalHeader, p.SkipAdditional); err != nil {
		return nil, 0, false
	}
	return pick(recs, fqdn)
}

// readSection appends the A, AAAA and CNAME records of class IN in the
// current section to recs and skips the rest.
func readSection(p *dnsmessage.Parser, recs []record, header func() (dnsmessage.ResourceHeader, error), skip func() error) ([]record, error) {
	for {
		h, err := header()
		if err == dnsmessage.ErrSectionDone {
			return recs, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Class&classMask != dnsmessage.ClassINET {
			if err := skip(); err != nil {
				return nil, err
			}
			continue
		}
		r := record{owner: strings.ToLower(h.Name.String()), ttl: h.TTL}
		switch h.Type {
		case dnsmessage.TypeA:
			a, err := p.AResource()
			if err != nil {
				return nil, err
			}
			r.addr = netip.AddrFrom4(a.A)
		case dnsmessage.TypeAAAA:
			a, err := p.AAAAResource()
			if err != nil {
				return nil, err
			}
			r.addr = netip.AddrFrom16(a.AAAA)
		case dnsmessage.TypeCNAME:
			c, err := p.CNAMEResource()
			if err != nil {
				return nil, err
			}
			r.target = strings.ToLower(c.CNAME.String())
		default:
			if err := skip(); err != nil {
				return nil, err
			}
			continue
		}
		recs = append(recs, r)
	}
}

// pick follows CNAMEs from fqdn and collects usable addresses, IPv4 first,
// without duplicates.
func pick(recs []record, fqdn string) (addrs []netip.Addr, ttl uint32, ok bool) {
	names := map[string]bool{fqdn: true}
	ttl = ^uint32(0)
	for range maxAliases {
		grew := false
		for _, r := range recs {
			if r.target != "" && names[r.owner] && !names[r.target] {
				names[r.target] = true
				ttl = min(ttl, r.ttl)
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	var v4, v6 []netip.Addr
	addrTTL := ^uint32(0)
	for _, r := range recs {
		if r.target != "" || !names[r.owner] || !usable(r.addr) {
			continue
		}
		if r.addr.Is4() {
			v4 = appendNew(v4, r.addr)
		} else {
			v6 = appendNew(v6, r.addr)
		}
		addrTTL = min(addrTTL, r.ttl)
	}
	addrs = append(v4, v6...)
	if len(addrs) == 0 {
		return nil, 0, false
	}
	return addrs, min(ttl, addrTTL), true
}

// usable rejects addresses that cannot be a host's: unspecified, multicast,
// broadcast.
func usable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func appendNew(list []netip.Addr, a netip.Addr) []netip.Addr {
	for _, b := range list {
		if a == b {
			return list
		}
	}
	return append(list, a)
}
