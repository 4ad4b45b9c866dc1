// Package srcaddr names the source a network client is counted against by
// the hub's per-address limits: its IP address, or for IPv6 the /64 it is
// in, since one host usually holds a whole /64 and could otherwise rotate
// through its addresses.
package srcaddr

import "net"

// Key returns the source of remote ("host:port", as net.Conn.RemoteAddr
// prints it): an IPv4 address (IPv4-mapped IPv6 included), or an IPv6 /64
// written "prefix::/64". Anything that is not an IP is returned as it is.
func Key(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
