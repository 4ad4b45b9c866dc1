// Package modbussim is an in-process Modbus TCP device: a register bank
// served by github.com/simonvetter/modbus's server, optionally driven by a
// profile that makes the values change over time and reacts to writes.
// `edk sim modbus` runs it; the tests of driver/modbus use it as their device.
//
// Registers that the bank does not hold answer "illegal data address", as
// a real device does.
package modbussim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/edk-go/edk/driver/modbus"
)

// DefaultListen is where the simulator listens when Config.Listen is empty.
const DefaultListen = "127.0.0.1:5020"

// Config of a simulated device.
type Config struct {
	// Listen is host:port (DefaultListen when empty). Port 0 picks a free port.
	Listen string
	// Profile is the name of a profile ("inverter"), or "" for an empty bank
	// filled with the Set methods.
	Profile string
	// Logger receives writes and profile events; nil is silent.
	Logger *slog.Logger
}

// Profiles lists the profile names Listen accepts.
func Profiles() []string { return []string{"inverter"} }

type bitKey struct {
	t    modbus.Table
	addr uint16
}

// Server is a running simulated device.
type Server struct {
	log     *slog.Logger
	profile profile
	addr    string

	mu      sync.Mutex
	words   map[bitKey]uint16 // holding and input registers; 0/1 for coils and discrete inputs
	srv     *mb.ModbusServer
	running bool
	delay   time.Duration
	closed  chan struct{}
	once    sync.Once

	requests atomic.Uint64
}

// profile drives a bank: update runs before every read, write may refuse a
// write to a holding register or coil with a Modbus error.
type profile interface {
	update(s *Server, now time.Time)
	write(s *Server, t modbus.Table, addr uint16, value uint16) error
}

// Listen starts a simulated device and returns once it accepts connections.
func Listen(cfg Config) (*Server, error) {
	s := &Server{words: map[bitKey]uint16{}, closed: make(chan struct{}), log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch cfg.Profile {
	case "":
	case "inverter":
		s.profile = newInverter(s, time.Now())
	default:
		return nil, fmt.Errorf("modbussim: unknown profile %q; known: %v", cfg.Profile, Profiles())
	}
	listen := cfg.Listen
	if listen == "" {
		listen = DefaultListen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("modbussim: listen address %q: want host:port, e.g. 127.0.0.1:5020", listen)
	}
	for attempt := 0; ; attempt++ {
		s.addr = listen
		if port == "0" {
			// simonvetter/modbus binds by itself and does not tell the port:
			// take a free one from the kernel and hand it over
			l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				return nil, fmt.Errorf("modbussim: %w", err)
			}
			s.addr = l.Addr().String()
			l.Close()
		}
		err = s.Start()
		if err == nil || port != "0" || attempt == 4 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("modbussim: listen on %s: %w", s.addr, err)
	}
	return s, nil
}

// Addr is the host:port the device listens on.
func (s *Server) Addr() string { return s.addr }

// URL is the address to give the driver: tcp://host:port.
func (s *Server) URL() string { return "tcp://" + s.addr }

// Start listens again after Stop, on the same address (a device that comes
// back). It is a no-op while running.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	select {
	case <-s.closed:
		return errors.New("modbussim: server closed")
	default:
	}
	srv, err := mb.NewServer(&mb.ServerConfiguration{
		URL: "tcp://" + s.addr, Timeout: 30 * time.Second, MaxClients: 64,
		Logger: log.New(io.Discard, "", 0),
	}, handler{s})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	s.srv, s.running = srv, true
	return nil
}

// Stop closes the listener and every connection, keeping the registers: a
// device that disappears. Start brings it back.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	s.running = false
	return s.srv.Stop()
}

// Serve blocks until ctx is done, then closes the server. It returns nil.
func (s *Server) Serve(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.closed:
	}
	return s.Close()
}

// Close stops the server for good. It is safe to call more than once.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.Stop()
}

// Requests counts the requests served (reads and writes, failed ones too).
func (s *Server) Requests() uint64 { return s.requests.Load() }

// SetDelay makes every answer wait d: a slow device, for timeout tests.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetRegisters stores words from addr on in a table (for coils and discrete
// inputs, non-zero is on). It adds the registers to the bank.
func (s *Server) SetRegisters(t modbus.Table, addr uint16, words ...uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set(t, addr, words...)
}

func (s *Server) set(t modbus.Table, addr uint16, words ...uint16) {
	for i, w := range words {
		if t.IsBits() && w != 0 {
			w = 1
		}
		s.words[bitKey{t, addr + uint16(i)}] = w
	}
}

// Registers returns count words from addr of a table (0 where unmapped).
func (s *Server) Registers(t modbus.Table, addr, count uint16) []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint16, count)
	for i := range out {
		out[i] = s.words[bitKey{t, addr + uint16(i)}]
	}
	return out
}

// Remove deletes registers from the bank: reading them becomes an
// "illegal data address" exception.
func (s *Server) Remove(t modbus.Table, addr, count uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range count {
		delete(s.words, bitKey{t, addr + i})
	}
}

type handler struct{ s *Server }

// wait applies the configured delay; it ends early when the server closes.
func (s *Server) wait() {
	s.mu.Lock()
	d := s.delay
	s.mu.Unlock()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.closed:
	}
}

func (s *Server) read(t modbus.Table, addr, count uint16) ([]uint16, error) {
	s.requests.Add(1)
	s.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.profile != nil {
		s.profile.update(s, time.Now())
	}
	out := make([]uint16, count)
	for i := range out {
		w, ok := s.words[bitKey{t, addr + uint16(i)}]
		if !ok {
			return nil, mb.ErrIllegalDataAddress
		}
		out[i] = w
	}
	return out, nil
}

func (s *Server) write(t modbus.Table, addr uint16, words []uint16) error {
	s.requests.Add(1)
	s.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range words {
		if _, ok := s.words[bitKey{t, addr + uint16(i)}]; !ok {
			return mb.ErrIllegalDataAddress
		}
	}
	for i, w := range words {
		if s.profile != nil {
			if err := s.profile.write(s, t, addr+uint16(i), w); err != nil {
				return err
			}
		}
		s.set(t, addr+uint16(i), w)
		s.log.Info("register written", "table", t.String(), "register", addr+uint16(i), "value", w)
	}
	return nil
}

func bools(words []uint16) []bool {
	out := make([]bool, len(words))
	for i, w := range words {
		out[i] = w != 0
	}
	return out
}

func (h handler) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	if req.IsWrite {
		words := make([]uint16, len(req.Args))
		for i, b := range req.Args {
			if b {
				words[i] = 1
			}
		}
		return nil, h.s.write(modbus.Coil, req.Addr, words)
	}
	w, err := h.s.read(modbus.Coil, req.Addr, req.Quantity)
	return bools(w), err
}

func (h handler) HandleDiscreteInputs(req *mb.DiscreteInputsRequest) ([]bool, error) {
	w, err := h.s.read(modbus.DiscreteInput, req.Addr, req.Quantity)
	return bools(w), err
}

func (h handler) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	if req.IsWrite {
		return nil, h.s.write(modbus.Holding, req.Addr, req.Args)
	}
	return h.s.read(modbus.Holding, req.Addr, req.Quantity)
}

func (h handler) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	return h.s.read(modbus.Input, req.Addr, req.Quantity)
}
