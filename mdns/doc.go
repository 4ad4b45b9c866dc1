// Package mdns finds a host such as "enapter-gateway.local" by multicast DNS
// when the system resolver cannot.
//
// Enapter gateways announce themselves by mDNS, and many machines that run a
// device program (containers, minimal Linux images, Windows without Bonjour)
// have no mDNS in their system resolver. Like Enapter's Python SDK, edk then
// sends one ordinary DNS query to the mDNS group (224.0.0.251:5353, and
// [ff02::fb]:5353) from an ephemeral UDP port. RFC 6762 §5.1 calls this a
// one-shot query: because the source port is not 5353, a responder answers
// by unicast straight to that port, echoing the query ID (§6.7). edk also
// sets the unicast-response ("QU") bit on its questions, the RFC's way of
// asking for a unicast answer, so that a responder which looks only at that
// bit answers the same way. edk never binds port 5353 and never joins the
// group, so it does not get in the way of avahi, systemd-resolved or
// mDNSResponder running on the same machine.
//
// Answers are cached for their TTL (RFC 6762 §6.7 caps the TTL of these
// unicast answers at 10 s, so the cache is short-lived by design). Call
// [ResolveHost] before every connection attempt, as the device runtime is
// meant to: it asks again each time, because a gateway's address can change,
// and a failure comes back as an error naming the host, for the caller's
// reconnect loop to retry with backoff and log.
//
// Which network interface a query leaves by is the operating system's
// choice (the route to 224.0.0.0/4, or to ff02::/16 on the interface it picks
// for link-local multicast). To choose the IPv6 interface, give the group a
// zone: Group6 = "[ff02::fb%eth0]:5353". The group addresses are
// configurable, which is also how tests point the resolver at a responder on
// 127.0.0.1.
package mdns
