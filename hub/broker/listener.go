package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// connListener serves mochi from a net.Listener that Start opened itself.
// Unlike mochi's own TCP and Net listeners, it remembers every accepted
// connection and the goroutine serving it, so that Close can cut connections
// still in the CONNECT handshake (mochi only knows clients after CONNECT) and
// wait for all of them: Broker.Close then leaves no goroutine behind, and the
// address can be bound again at once.
type connListener struct {
	id      string
	ln      net.Listener
	gate    *gate         // shared by the broker's listeners
	timeout time.Duration // for the TLS handshake and CONNECT; <= 0: none
	log     *slog.Logger

	mu     sync.Mutex
	closed bool
	done   chan struct{} // closed by Close; stops the accept back-off
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // Serve and one per connection; Add only under mu while !closed
}

var _ listeners.Listener = (*connListener)(nil)

func newConnListener(id string, ln net.Listener, g *gate, timeout time.Duration, log *slog.Logger) *connListener {
	return &connListener{
		id:      id,
		ln:      ln,
		gate:    g,
		timeout: timeout,
		log:     log.With("listener", id),
		done:    make(chan struct{}),
		conns:   make(map[net.Conn]struct{}),
	}
}

func (l *connListener) ID() string              { return l.id }
func (l *connListener) Address() string         { return l.ln.Addr().String() }
func (l *connListener) Protocol() string        { return l.id }
func (l *connListener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until Close, handing each to establish on its
// own goroutine. mochi calls it on a goroutine of its own.
func (l *connListener) Serve(establish listeners.EstablishFn) {
	if !l.track(nil) {
		return
	}
	defer l.wg.Done()

	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does
			// rather than spin or stop accepting for good.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("mqtt accept failed; retrying", "err", err, "retry_in", delay)
			if !l.pause(delay) {
				return
			}
			continue
		}
		delay = 0
		key, ok := l.gate.admit(conn.RemoteAddr().String())
		if !ok {
			_ = conn.Close()
			continue
		}
		if !l.track(conn) {
			l.gate.leave(key)
			_ = conn.Close()
			return
		}
		if l.timeout > 0 {
			// mochi replaces this deadline with the client's keepalive
			// once it has read CONNECT; until then a connection that
			// never speaks would hold its socket and goroutine forever.
			_ = conn.SetDeadline(time.Now().Add(l.timeout))
		}
		go func() {
			defer l.gate.leave(key)
			defer l.untrack(conn)
			if err := establish(l.id, conn); err != nil {
				// Ordinary for clients that drop, fail auth or are cut by Close.
				l.log.Debug("mqtt client connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// pause waits d or until Close; it reports whether to carry on.
func (l *connListener) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// track registers a goroutine (and its conn, if any) unless Close has begun,
// so that wg.Add never races with the Wait in Close.
func (l *connListener) track(conn net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.wg.Add(1)
	if conn != nil {
		l.conns[conn] = struct{}{}
	}
	return true
}

func (l *connListener) untrack(conn net.Conn) {
	l.mu.Lock()
	delete(l.conns, conn)
	l.mu.Unlock()
	_ = conn.Close()
	l.wg.Done()
}

// Close stops accepting, cuts every connection (in its handshake or
// connected) and waits for every goroutine. It does not call mochi's
// closeClients: in mochi v2.7.9 that takes the clients' read lock twice
// (Clients.GetByListener → Len), which deadlocks when a client disconnects
// at the same moment. Cutting the connections makes mochi drop each client
// as it would on any network error.
func (l *connListener) Close(_ listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()

	_ = l.ln.Close()

	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
