package can

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSocketCANVcan runs itself again inside a network namespace of its
// own (unshare -n), where it creates vcan0, so that nothing touches the
// host's interfaces. Without the vcan kernel module (or without unshare)
// it skips, saying which.
func TestSocketCANVcan(t *testing.T) {
	if os.Getenv("EDK_CAN_NETNS") == "1" {
		socketCANOnVcan(t)
		return
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("SocketCAN test needs unshare (util-linux) to make a network namespace")
	}
	args := []string{"-n"}
	if os.Geteuid() != 0 {
		args = []string{"-r", "-n"} // a user namespace grants CAP_NET_ADMIN there
	}
	probe := exec.Command(unshare, append(args, "ip", "link", "add", "dev", "vcan0", "type", "vcan")...)
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("SocketCAN test skipped: cannot create vcan0 in a network namespace (%v: %s); it needs the vcan kernel module (modprobe vcan) and user or root namespaces",
			err, strings.TrimSpace(string(out)))
	}
	script := `ip link add dev vcan0 type vcan && ip link set up vcan0 && exec "$0" -test.run='^TestSocketCANVcan$' -test.v`
	cmd := exec.Command(unshare, append(args, "sh", "-c", script, os.Args[0])...)
	cmd.Env = append(os.Environ(), "EDK_CAN_NETNS=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in the namespace:\n%s", out)
	if err != nil {
		t.Fatalf("SocketCAN test in its namespace: %v", err)
	}
}

func socketCANOnVcan(t *testing.T) {
	a, err := OpenSocketCAN("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenSocketCAN("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, f := range []Frame{
		{ID: 0x123, Len: 2, Data: []byte{0xAB, 0xCD}},
		{ID: 0x18FF50E5, Extended: true, Len: 8, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
	} {
		if err := a.Send(ctx, f); err != nil {
			t.Fatal(err)
		}
		got, err := b.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != f.ID || got.Extended != f.Extended || !bytes.Equal(got.Data, f.Data) {
			t.Errorf("sent %v, received %v", f, got)
		}
	}
	if err := a.Send(ctx, Frame{ID: 0x800, Data: []byte{}}); err == nil {
		t.Error("standard id 0x800 sent")
	}
	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	if _, err := b.Receive(short); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive with a cancelled ctx: %v", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := b.Receive(ctx)
		errc <- err
	}()
	b.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Receive after Close: %v", err)
	}
	if _, err := OpenSocketCAN("nosuchcan0"); err == nil {
		t.Error("a missing interface opened")
	}
}

func TestOpenSocketCANMissingInterface(t *testing.T) {
	_, err := OpenSocketCAN("nosuchcan0")
	if err == nil || !strings.Contains(err.Error(), "socketcan nosuchcan0") {
		t.Errorf("missing interface: %v", err)
	}
}

// socketPairCAN is a SocketCAN over one end of a SOCK_SEQPACKET pair, so
// that its reads, writes, cancellation and Close are tested on hosts
// without vcan; the other end plays the kernel.
func socketPairCAN(t *testing.T) (*SocketCAN, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() { peer.Close() })
	s := newSocketCAN("pair0", fds[0])
	t.Cleanup(func() { s.Close() })
	return s, peer
}

func TestSocketCANOverSocketPair(t *testing.T) {
	s, peer := socketPairCAN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	sent := Frame{ID: 0x18FF50E5, Extended: true, Len: 2, Data: []byte{0xAB, 0xCD}}
	if err := s.Send(ctx, sent); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 100)
	n, err := peer.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := encodeCANFrame(sent); !bytes.Equal(b[:n], want[:]) {
		t.Errorf("on the wire % X, want % X", b[:n], want)
	}
	for _, bad := range []Frame{
		{ID: 0x800, Len: 0, Data: []byte{}},
		{ID: 1, Len: 9, Data: make([]byte, 9)},
		{ID: 1, Remote: true, Len: 1},
	} {
		if err := s.Send(ctx, bad); err == nil {
			t.Errorf("sent %v", bad)
		}
	}

	// what Receive skips: a CAN FD-sized packet, an error frame, a
	// truncated one; then a frame
	errFrame := make([]byte, canFrameSize)
	binary.NativeEndian.PutUint32(errFrame, canERRFlag|4)
	want := Frame{ID: 0x123, Len: 3, Data: []byte{1, 2, 3}}
	wire := encodeCANFrame(want)
	for _, pkt := range [][]byte{make([]byte, 72), errFrame, make([]byte, 5), wire[:]} {
		if _, err := peer.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != want.ID || got.Extended || !bytes.Equal(got.Data, want.Data) {
		t.Errorf("received %v, want %v", got, want)
	}

	// a cancelled ctx ends a waiting Receive; the next one still works
	short, cancelShort := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Receive(short)
		errc <- err
	}()
	cancelShort()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Receive after cancel: %v", err)
	}
	if _, err := peer.Write(wire[:]); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Receive(ctx); err != nil || got.ID != want.ID {
		t.Errorf("Receive after a cancelled one: %v %v", got, err)
	}

	// Close ends a waiting Receive with ErrClosed; Send then fails too
	go func() {
		_, err := s.Receive(ctx)
		errc <- err
	}()
	s.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Receive after Close: %v", err)
	}
	if err := s.Send(ctx, want); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

// The peer gone (the interface removed, in real life): Receive returns
// an error instead of spinning.
func TestSocketCANPeerGone(t *testing.T) {
	s, peer := socketPairCAN(t)
	peer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Receive(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Receive with the peer gone: %v", err)
	}
}
