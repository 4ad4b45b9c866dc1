//go:build !linux

package can

import (
	"context"
	"errors"
)

// SocketCAN needs Linux; elsewhere OpenSocketCAN always fails.
type SocketCAN struct{}

// OpenSocketCAN fails: SocketCAN is Linux's.
func OpenSocketCAN(iface string) (*SocketCAN, error) {
	return nil, errors.New("socketcan " + iface + ": SocketCAN needs Linux")
}

// Send is never reached.
func (*SocketCAN) Send(context.Context, Frame) error { return ErrClosed }

// Receive is never reached.
func (*SocketCAN) Receive(context.Context) (Frame, error) { return Frame{}, ErrClosed }

// Close is never reached.
func (*SocketCAN) Close() error { return nil }
