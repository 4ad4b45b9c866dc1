package broker

import (
	"log/slog"
	"sync"
	"time"

	"github.com/edk-go/edk/internal/ratelog"
	"github.com/edk-go/edk/internal/srcaddr"
)

// Defaults of the connection limits (Config.ConnectTimeout,
// MaxConnections, MaxConnectionsPerAddr).
const (
	// DefaultConnectTimeout is how long a new connection has to complete
	// its TLS handshake and send CONNECT.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxConnections bounds the connections of all listeners
	// together, those still before CONNECT included. It is lowered to the
	// process's open-file limit less fdReserve when that is smaller.
	DefaultMaxConnections = 10_000
	// DefaultMaxConnectionsPerAddr bounds the connections from one source
	// address (an IPv4 address or an IPv6 /64).
	DefaultMaxConnectionsPerAddr = 256
	// fdReserve is the file descriptors left for everything but MQTT
	// clients: the HTTP API and its clients, the store, the logs.
	fdReserve = 512
)

// gate counts the open connections of every listener of one broker, in
// total and by source address, and turns away those over the caps.
type gate struct {
	max, perAddr int // <= 0: no cap
	log          *slog.Logger
	refusals     *ratelog.Limiter

	mu      sync.Mutex
	total   int
	byAddr  map[string]int
	overMax uint64 // refused: over max
	overPer uint64 // refused: over perAddr
}

// Stats are the broker's connection counters.
type Stats struct {
	Connections       int    // open now, those before CONNECT included
	RefusedTotalCap   uint64 // closed at accept: over Config.MaxConnections
	RefusedPerAddrCap uint64 // closed at accept: over Config.MaxConnectionsPerAddr
}

func (g *gate) stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Stats{Connections: g.total, RefusedTotalCap: g.overMax, RefusedPerAddrCap: g.overPer}
}

func newGate(max, perAddr int, log *slog.Logger) *gate {
	return &gate{max: max, perAddr: perAddr, log: log, byAddr: make(map[string]int),
		refusals: ratelog.New(10*time.Second, 5, nil)}
}

// admit counts a new connection from remote, or reports false (and logs,
// at most 5 lines per 10 s) when it would be over a cap. A connection
// admitted must be given back with leave.
func (g *gate) admit(remote string) (key string, ok bool) {
	key = srcaddr.Key(remote)
	g.mu.Lock()
	switch {
	case g.max > 0 && g.total >= g.max:
		g.overMax++
		g.mu.Unlock()
		g.refuse("mqtt connection refused: the broker holds its most connections (--mqtt-max-connections)", key, g.max)
		return key, false
	case g.perAddr > 0 && g.byAddr[key] >= g.perAddr:
		g.overPer++
		g.mu.Unlock()
		g.refuse("mqtt connection refused: too many connections from this address (--mqtt-max-connections-per-address)", key, g.perAddr)
		return key, false
	}
	g.total++
	g.byAddr[key]++
	g.mu.Unlock()
	return key, true
}

func (g *gate) leave(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.byAddr[key]--; g.byAddr[key] <= 0 {
		delete(g.byAddr, key)
	}
}

func (g *gate) refuse(msg, key string, limit int) {
	if ok, suppressed := g.refusals.Allow(); ok {
		g.log.Warn(msg, "remote", key, "limit", limit, "suppressed", suppressed)
	}
}
