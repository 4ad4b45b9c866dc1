//go:build linux

package mdns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/internal/testutil"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// TestRealMulticastInNetns sends real multicast queries to the real mDNS
// groups, 224.0.0.251:5353 and [ff02::fb]:5353, between two network
// namespaces joined by a veth pair that this test creates: a responder
// joined to the groups in one, the querier in the other. Nothing leaves by
// a real interface. It needs root and iproute2 and skips without them.
func TestRealMulticastInNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: creates network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: creating network namespaces needs root (run the tests as root, or in a container with CAP_NET_ADMIN and CAP_SYS_ADMIN, to send real multicast)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: the ip command (iproute2) is not installed")
	}
	suffix := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	nsQ, nsR := "edk-mdns-q-"+suffix, "edk-mdns-r-"+suffix
	ifQ, ifR := "edkq"+suffix[len(suffix)-5:], "edkr"+suffix[len(suffix)-5:]
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := ip("netns", "add", nsQ); err != nil {
		t.Skipf("skipped: cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() { _ = ip("netns", "del", nsQ) })
	if err := ip("netns", "add", nsR); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ip("netns", "del", nsR) }) // removes the veth pair too
	for _, args := range [][]string{
		{"link", "add", ifQ, "netns", nsQ, "type", "veth", "peer", "name", ifR, "netns", nsR},
		{"-n", nsQ, "link", "set", "lo", "up"},
		{"-n", nsR, "link", "set", "lo", "up"},
		{"-n", nsQ, "addr", "add", "10.253.0.1/24", "dev", ifQ},
		{"-n", nsR, "addr", "add", "10.253.0.2/24", "dev", ifR},
		{"-n", nsQ, "-6", "addr", "add", "fd00:edc::1/64", "dev", ifQ, "nodad"},
		{"-n", nsR, "-6", "addr", "add", "fd00:edc::2/64", "dev", ifR, "nodad"},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	// No duplicate address detection on the link-local addresses: until it
	// ends the kernel will not send from them.
	for ns, ifname := range map[string]string{nsQ: ifQ, nsR: ifR} {
		inNetns(t, ns, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/accept_dad", []byte("0"), 0)
		})
	}
	for _, args := range [][]string{
		{"-n", nsQ, "link", "set", ifQ, "up"},
		{"-n", nsR, "link", "set", ifR, "up"},
		// The querier's only route to the IPv4 group: the veth.
		{"-n", nsQ, "route", "add", "224.0.0.0/4", "dev", ifQ},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until IPv6 is up on both ends: the kernel adds the link-local
	// addresses up to a second after the link comes up, and drops IPv6
	// multicast on the veth until then.
	for ns, ifname := range map[string]string{nsQ: ifQ, nsR: ifR} {
		testutil.Eventually(t, "a usable IPv6 link-local address on "+ifname+" in "+ns, func() bool {
			out, err := exec.Command("ip", "-n", ns, "-6", "addr", "show", "dev", ifname, "scope", "link", "-tentative").CombinedOutput()
			return err == nil && strings.Contains(string(out), "fe80::")
		})
	}

	// The responder: bound to port 5353 and joined to both groups on its
	// end of the veth, as avahi would be.
	var c4, c6 *net.UDPConn
	inNetns(t, nsR, func() error {
		iface, err := net.InterfaceByName(ifR)
		if err != nil {
			return err
		}
		if c4, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 5353}); err != nil {
			return err
		}
		if err := ipv4.NewPacketConn(c4).JoinGroup(iface, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251)}); err != nil {
			c4.Close()
			return err
		}
		if c6, err = net.ListenUDP("udp6", &net.UDPAddr{Port: 5353}); err != nil {
			c4.Close()
			return err
		}
		if err := ipv6.NewPacketConn(c6).JoinGroup(iface, &net.UDPAddr{IP: net.ParseIP("ff02::fb")}); err != nil {
			c4.Close()
			c6.Close()
			return err
		}
		return nil
	})
	r4, r6 := serveResponder(t, c4), serveResponder(t, c6)
	for _, r := range []*responder{r4, r6} {
		r.set("enapter-gateway.local", "10.253.0.2", "fe80::2")
		r.setTTL(10)
	}

	lookup := func(r Resolver) ([]netip.Addr, time.Duration, error) {
		var (
			addrs []netip.Addr
			ttl   time.Duration
			err   error
		)
		inNetns(t, nsQ, func() error {
			// The sockets are made here, in the querier's namespace.
			addrs, ttl, err = r.LookupHost(context.Background(), "enapter-gateway.local")
			return nil
		})
		return addrs, ttl, err
	}

	t.Run("IPv4 group", func(t *testing.T) {
		got, ttl, err := lookup(Resolver{Group6: Disabled, Timeout: defaultTestTimeout})
		if err != nil {
			t.Fatal(err)
		}
		// fe80::2 came over IPv4, on an unknown interface: left out.
		if !slices.Equal(got, addrs("10.253.0.2")) || ttl != 10*time.Second {
			t.Errorf("got %v, %v", got, ttl)
		}
		if r4.count() == 0 {
			t.Error("the responder saw no multicast query")
		}
	})
	t.Run("IPv6 group", func(t *testing.T) {
		got, _, err := lookup(Resolver{Group4: Disabled, Group6: "[ff02::fb%" + ifQ + "]:5353", Timeout: defaultTestTimeout})
		if err != nil {
			out, _ := exec.Command("ip", "-n", nsQ, "-6", "addr").CombinedOutput()
			t.Fatalf("%v; the responder saw %d queries; the querier's addresses:\n%s", err, r6.count(), out)
		}
		// The link-local answer gets the zone of the querier's interface.
		if want := []netip.Addr{netip.MustParseAddr("10.253.0.2"), netip.MustParseAddr("fe80::2").WithZone(ifQ)}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("silent group times out", func(t *testing.T) {
		r4.setSilent(true)
		defer r4.setSilent(false)
		_, _, err := lookup(Resolver{Group6: Disabled, Timeout: 200 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "224.0.0.251:5353") {
			t.Errorf("err = %v, want a timeout naming the group", err)
		}
	})
}

// inNetns runs f on an OS thread moved into the named network namespace
// and fails the test if entering it or f fails. The thread is never
// unlocked, so it ends with its goroutine instead of going back to the
// runtime in the wrong namespace.
func inNetns(t *testing.T, name string, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in network namespace %s: %v", name, err)
	}
}
