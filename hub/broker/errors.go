package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

var (
	// ErrAddrInUse reports that a listen address is taken, usually by another
	// broker. A *ListenError matches it with errors.Is, as it does
	// syscall.EADDRINUSE.
	ErrAddrInUse = errors.New("address already in use")
	// ErrClosed is returned by Publish after Close.
	ErrClosed = errors.New("broker closed")
)

// ListenError is a failure to open a listener.
type ListenError struct {
	Addr string // the address that could not be bound
	Err  error  // the cause, from package net
}

func (e *ListenError) Error() string {
	if e.inUse() {
		return fmt.Sprintf("listen on %s: %v (another broker running? choose a port with --mqtt-addr)", e.Addr, ErrAddrInUse)
	}
	return fmt.Sprintf("listen on %s: %v", e.Addr, e.Err)
}

// Unwrap exposes both the net error (so errors.Is(err, syscall.EADDRINUSE)
// holds) and, for a taken port, ErrAddrInUse.
func (e *ListenError) Unwrap() []error {
	if e.inUse() {
		return []error{ErrAddrInUse, e.Err}
	}
	return []error{e.Err}
}

func (e *ListenError) inUse() bool { return errors.Is(e.Err, syscall.EADDRINUSE) }

func listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, &ListenError{Addr: addr, Err: err}
	}
	return ln, nil
}
