package can

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// SocketCAN is a raw CAN socket bound to one Linux CAN interface. It
// receives every frame on the bus (no filter) and, like any raw socket,
// not its own sent frames.
type SocketCAN struct {
	iface string
	f     *os.File // non-blocking, so reads and writes wait in Go's poller
	send  sync.Mutex
	// closed tells ErrClosed from other failures: os.File's deadline
	// setters answer a closed file with an internal poll error, not
	// os.ErrClosed.
	closed atomic.Bool
}

var _ Bus = (*SocketCAN)(nil)

// OpenSocketCAN opens a raw CAN socket on iface (can0, vcan0, slcan0…),
// which must exist and be up.
func OpenSocketCAN(iface string) (*SocketCAN, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("socketcan %s: %w", iface, err)
	}
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		return nil, fmt.Errorf("socketcan %s: socket: %w", iface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrCAN{Ifindex: ifi.Index}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("socketcan %s: bind: %w", iface, err)
	}
	return newSocketCAN(iface, fd), nil
}

// newSocketCAN wraps a non-blocking packet socket: a bound AF_CAN socket,
// or in tests one end of a SOCK_SEQPACKET pair standing in for it.
func newSocketCAN(iface string, fd int) *SocketCAN {
	return &SocketCAN{iface: iface, f: os.NewFile(uintptr(fd), "socketcan:"+iface)}
}

// Send writes one frame; a full transmit queue answers ENOBUFS at once
// rather than waiting.
func (s *SocketCAN) Send(ctx context.Context, f Frame) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if f.Remote {
		return errors.New("can: sending remote frames is not supported")
	}
	s.send.Lock()
	defer s.send.Unlock()
	dl, _ := ctx.Deadline()
	if err := s.f.SetWriteDeadline(dl); err != nil {
		return s.failure("send", err)
	}
	b := encodeCANFrame(f)
	if _, err := s.f.Write(b[:]); err != nil {
		return s.failure(fmt.Sprintf("send %v", f), err)
	}
	return nil
}

// Receive returns the next data or remote frame. One goroutine at a time
// may receive.
func (s *SocketCAN) Receive(ctx context.Context) (Frame, error) {
	if err := s.f.SetReadDeadline(time.Time{}); err != nil {
		return Frame{}, s.failure("receive", err)
	}
	// A deadline in the past wakes the blocked read when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = s.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	b := make([]byte, 72) // room for a CAN FD frame, which is then refused
	for {
		n, err := s.f.Read(b)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if ctx.Err() != nil {
				return Frame{}, ctx.Err()
			}
			// a late wake-up from an earlier call's ctx; check again
			// after clearing, as ours may have ended meanwhile
			_ = s.f.SetReadDeadline(time.Time{})
			if ctx.Err() != nil {
				return Frame{}, ctx.Err()
			}
			continue
		case err != nil:
			return Frame{}, s.failure("receive", err)
		}
		f, err := decodeCANFrame(b[:n])
		if err != nil {
			continue // not a frame this package reads
		}
		return f, nil
	}
}

// Close closes the socket; a blocked Receive returns ErrClosed.
func (s *SocketCAN) Close() error {
	s.closed.Store(true)
	return s.f.Close()
}

func (s *SocketCAN) failure(doing string, err error) error {
	if s.closed.Load() || errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("socketcan %s: %s: %w", s.iface, doing, err)
}
