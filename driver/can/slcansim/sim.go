// Package slcansim is a fake LAWICEL (slcan) USB-CAN adapter for tests: it
// sits on one end of a serial line (a pty), answers the setup and frame
// commands as the LAWICEL manual says (\r, z\r / Z\r, BEL on error),
// records the frames it is asked to send and writes frames "from the bus"
// on request.
package slcansim

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/edk-go/edk/driver/can"
)

// Adapter is a fake slcan adapter on an open serial device.
type Adapter struct {
	f *os.File
	// Silent adapters answer nothing, as some CANable firmware.
	silent bool
	sent   chan string

	mu      sync.Mutex
	open    bool
	busOff  bool
	bitrate string // the S command's digit
	cmds    []string
	done    chan struct{}
}

// Options configure an Adapter.
type Options struct {
	Silent bool // answer no command
}

// Start opens path (the adapter's end of the line) and serves it until
// Close.
func Start(path string, opts Options) (*Adapter, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("slcansim: %w", err)
	}
	a := &Adapter{f: f, silent: opts.Silent, sent: make(chan string, 256), done: make(chan struct{})}
	go a.serve()
	return a, nil
}

// Sent receives the frame lines (t…/T…, without \r) the adapter accepted.
func (a *Adapter) Sent() <-chan string { return a.sent }

// IsOpen says whether the channel is open (O, and no C since).
func (a *Adapter) IsOpen() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.open
}

// SetBusOff makes the adapter refuse frames (BEL), as when its
// controller went bus-off.
func (a *Adapter) SetBusOff(off bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.busOff = off
}

// Bitrate is the digit of the last S command ("6" for S6), "" before one.
func (a *Adapter) Bitrate() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bitrate
}

// Commands are the command lines received so far.
func (a *Adapter) Commands() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.cmds...)
}

// Inject writes raw bytes to the host, e.g. "t1232ABCD\r" or noise.
func (a *Adapter) Inject(raw string) error {
	_, err := a.f.WriteString(raw)
	return err
}

// InjectFrame writes f to the host as the adapter would.
func (a *Adapter) InjectFrame(f can.Frame) error {
	kind, id := "t", fmt.Sprintf("%03X", f.ID)
	if f.Extended {
		kind, id = "T", fmt.Sprintf("%08X", f.ID)
	}
	return a.Inject(fmt.Sprintf("%s%s%d%X\r", kind, id, len(f.Data), f.Data))
}

// Close stops the adapter, as if unplugged.
func (a *Adapter) Close() error {
	err := a.f.Close()
	<-a.done
	return err
}

func (a *Adapter) serve() {
	defer close(a.done)
	r := bufio.NewReader(a.f)
	for {
		line, err := r.ReadString('\r')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\r")
		answer := a.handle(line)
		if !a.silent {
			_, _ = a.f.WriteString(answer)
		}
	}
}

func (a *Adapter) handle(line string) string {
	const ok, bel = "\r", "\a"
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cmds = append(a.cmds, line)
	if line == "" {
		return ok
	}
	switch c := line[0]; {
	case c == 'S' && len(line) == 2 && line[1] >= '0' && line[1] <= '8':
		if a.open {
			return bel
		}
		a.bitrate = line[1:]
		return ok
	case line == "O":
		if a.open || a.bitrate == "" {
			return bel
		}
		a.open = true
		return ok
	case line == "C":
		if !a.open {
			return bel
		}
		a.open = false
		return ok
	case c == 't' || c == 'T':
		if !a.open || a.busOff {
			return bel
		}
		select {
		case a.sent <- line:
		default:
		}
		if c == 't' {
			return "z\r"
		}
		return "Z\r"
	}
	return bel
}
