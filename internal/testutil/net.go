package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process may take it before the caller binds it, so prefer listening on port 0
// and use this only where a port must be known up front (an external process,
// a restart on the same port).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitForTCP fails the test unless addr accepts a TCP connection within timeout.
func WaitForTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	if err := waitForTCP(addr, timeout, nil); err != nil {
		t.Fatal(err)
	}
}

// errExited reports that the process being waited for ended first.
var errExited = errors.New("process exited")

// waitForTCP dials addr until it accepts, the deadline passes or exited is
// closed. There is no event to wait for on a foreign process's socket, so it
// polls; the retry tick only paces the dials, nothing relies on its length.
func waitForTCP(addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-exited:
			return fmt.Errorf("wait for %s: %w", addr, errExited)
		case <-deadline.C:
			return fmt.Errorf("wait for %s: not accepting after %v: %w", addr, timeout, err)
		case <-tick.C:
		}
	}
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// logBuffer collects a server's log lines from several goroutines so that a
// test prints them only when it fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logOnFailure prints what buf collected, under name, if t has failed by the
// time its cleanups run. Register it before the cleanup that stops the
// server, so that the server's last lines are included.
func logOnFailure(t testing.TB, name string, buf *logBuffer) {
	t.Helper()
	t.Cleanup(func() {
		t.Helper()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, buf.String())
		}
	})
}
