// Package faultproxy is an in-process TCP proxy for tests that break the
// network on purpose: it sits between a client and an upstream server on
// 127.0.0.1 and can cut every connection, hang them silently (half-open: no
// FIN, no RST, no bytes), add latency and throttle.
package faultproxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chunkSize bounds how many bytes are read, and so delayed, at a time.
const chunkSize = 32 << 10

// Proxy forwards every connection it accepts to its upstream address. It is
// safe for concurrent use; Start registers its cleanup with the test.
type Proxy struct {
	upstream string
	ln       net.Listener
	done     chan struct{} // closed by close
	wg       sync.WaitGroup

	mu       sync.Mutex
	conns    map[*link]struct{}
	flowing  chan struct{} // closed while forwarding; open while hung
	latency  time.Duration
	throttle int  // bytes per second per direction; 0 means unlimited
	down     bool // new connections are refused

	accepted atomic.Int64
	cut      atomic.Int64
}

// link is one proxied connection: the client's side and the upstream side.
type link struct {
	client, server net.Conn
	closeOnce      sync.Once
	done           chan struct{}
}

func (l *link) close(rst bool) {
	l.closeOnce.Do(func() {
		if rst {
			abort(l.client)
			abort(l.server)
		} else {
			_ = l.client.Close()
			_ = l.server.Close()
		}
		close(l.done)
	})
}

// abort closes c with an RST instead of a FIN.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// Start listens on a free 127.0.0.1 port and forwards to upstream
// (host:port). Everything is closed, and every goroutine has returned, when
// the test ends.
func Start(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen: %v", err)
	}
	flowing := make(chan struct{})
	close(flowing)
	p := &Proxy{upstream: upstream, ln: ln, done: make(chan struct{}), conns: map[*link]struct{}{}, flowing: flowing}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr returns the address clients dial, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepted returns how many client connections the proxy has accepted.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Active returns how many proxied connections are open now.
func (p *Proxy) Active() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// CutCount returns how many connections Cut has closed.
func (p *Proxy) CutCount() int64 { return p.cut.Load() }

// Cut closes every open connection at once, both sides, with an RST (linger
// 0). New connections are still accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close(true)
		p.cut.Add(1)
	}
}

// Down makes the upstream unreachable: it cuts every open connection and
// refuses new ones (RST) until Up.
func (p *Proxy) Down() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.Cut()
}

// Up accepts and forwards new connections again after Down.
func (p *Proxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// Hang stops forwarding in both directions on every connection, open or
// accepted later, without closing anything: peers see a silent, half-open
// link. Bytes already read are held until Resume.
func (p *Proxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
		p.flowing = make(chan struct{})
	default: // already hung
	}
}

// Resume forwards again, including what was held while hung.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
	default:
		close(p.flowing)
	}
}

// SetLatency delays every chunk forwarded, in either direction, by d.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
}

// SetThrottle limits each direction of each connection to about bytesPerSec;
// 0 removes the limit.
func (p *Proxy) SetThrottle(bytesPerSec int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.throttle = max(bytesPerSec, 0)
}

func (p *Proxy) settings() (flowing chan struct{}, latency time.Duration, throttle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flowing, p.latency, p.throttle
}

func (p *Proxy) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	_ = p.ln.Close()
	p.mu.Lock()
	links := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-p.done:
				return
			default:
				continue
			}
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			abort(c)
			continue
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: 5 * time.Second}
	server, err := d.Dial("tcp", p.upstream)
	if err != nil {
		_ = client.Close()
		return
	}
	l := &link{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	select {
	case <-p.done: // closing: p.close may already have snapshotted conns
		p.mu.Unlock()
		l.close(false)
		return
	default:
	}
	p.conns[l] = struct{}{}
	p.mu.Unlock()

	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); p.pipe(l, client, server) }()
	go func() { defer pipes.Done(); p.pipe(l, server, client) }()
	pipes.Wait()
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}

// pipe copies src to dst chunk by chunk, honouring hang, latency and
// throttle; when either side ends, it closes the link (after a hang is
// lifted, so that a hung link never shows an EOF).
func (p *Proxy) pipe(l *link, src, dst net.Conn) {
	defer l.close(false)
	buf := make([]byte, chunkSize)
	for {
		// Throttled reads are small, so that the rate stays smooth.
		size := chunkSize
		if _, _, throttle := p.settings(); throttle > 0 {
			size = min(max(throttle/10, 1), chunkSize)
		}
		n, rerr := src.Read(buf[:size])
		if !p.wait(l) {
			return
		}
		if n > 0 {
			_, latency, throttle := p.settings()
			delay := latency
			if throttle > 0 {
				delay += time.Duration(int64(n) * int64(time.Second) / int64(throttle))
			}
			if delay > 0 && !p.sleep(l, delay) {
				return
			}
			if !p.wait(l) { // a hang may have started meanwhile
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}

// wait blocks while the proxy is hung; it reports false if the link or the
// proxy was closed meanwhile.
func (p *Proxy) wait(l *link) bool {
	flowing, _, _ := p.settings()
	select {
	case <-flowing:
		select {
		case <-l.done:
			return false
		default:
			return true
		}
	case <-l.done:
		return false
	case <-p.done:
		return false
	}
}

func (p *Proxy) sleep(l *link, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	case <-p.done:
		return false
	}
}
