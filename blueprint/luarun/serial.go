//go:build lua

package luarun

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/goburrow/serial"

	"github.com/edk-go/edk/lua"
)

// serialPoll bounds one blocking read, so a read(count, timeout) can
// check its own deadline.
const serialPoll = 20 * time.Millisecond

// serialClient is v3 serial.new on a UCM port mapped to a host device.
type serialClient struct {
	p    serial.Port
	name string
}

func (c *serialClient) Close() error { return c.p.Close() }

// openSerial opens the host device p maps the UCM port name to, with p's
// line settings, reads polling every serialPoll.
func openSerial(name string, p SerialPort) (*serialClient, error) {
	port, err := serial.Open(&serial.Config{Address: p.Device, BaudRate: int(p.Baud), DataBits: int(p.DataBits),
		StopBits: int(p.StopBits), Parity: p.Parity, Timeout: serialPoll})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p.Device, err)
	}
	return &serialClient{p: port, name: name}, nil
}

func (c *serialClient) read(count int, timeout time.Duration) ([]byte, error) {
	buf := make([]byte, 0, count)
	chunk := make([]byte, count)
	deadline := time.Now().Add(timeout)
	for len(buf) < count {
		n, err := c.p.Read(chunk[:count-len(buf)])
		if n > 0 { // -1 with EIO: goburrow/serial hands on read(2)'s result
			buf = append(buf, chunk[:n]...)
		}
		if err != nil && !errors.Is(err, serial.ErrTimeout) {
			return nil, fmt.Errorf("read %s: %w", c.name, err)
		}
		if len(buf) < count && time.Now().After(deadline) {
			return nil, fmt.Errorf("read %s: timeout after %d of %d bytes", c.name, len(buf), count)
		}
	}
	return buf, nil
}

// flush drops what is waiting in the input buffer.
func (c *serialClient) flush() error {
	b := make([]byte, 256)
	for {
		n, err := c.p.Read(b)
		if errors.Is(err, serial.ErrTimeout) || n == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("flush %s: %w", c.name, err)
		}
	}
}

func (r *Runtime) installSerial() {
	r.installV1Serial() // v1 rs485/rs232 send and receive, modbusrtu.new
	r.class("serial", fns{
		"read": func(s *lua.State) (int, error) {
			c, err := self[*serialClient](r, s, "read")
			if err != nil {
				return 0, err
			}
			n := optInt(s, 2, 1)
			if n < 1 || n > 1<<20 {
				return pushErr(s, fmt.Errorf("read: count %d out of range 1..%d", n, 1<<20))
			}
			to := min(time.Duration(optInt(s, 3, 1000))*time.Millisecond, r.opts.CallTimeout)
			b, err := c.read(int(n), to)
			if err != nil {
				return pushErr(s, err)
			}
			s.PushString(string(b))
			return 1, nil
		},
		"write": func(s *lua.State) (int, error) {
			c, err := self[*serialClient](r, s, "write")
			if err != nil {
				return 0, err
			}
			data, err := argString(s, 2, "write")
			if err != nil {
				return 0, err
			}
			if _, err := c.p.Write([]byte(data)); err != nil {
				s.PushString(fmt.Sprintf("write %s: %v", c.name, err))
				return 1, nil
			}
			return 0, nil
		},
		"flush": func(s *lua.State) (int, error) {
			c, err := self[*serialClient](r, s, "flush")
			if err != nil {
				return 0, err
			}
			if err := c.flush(); err != nil {
				s.PushString(err.Error())
				return 1, nil
			}
			return 0, nil
		},
		// One script runs one call at a time, so the port is already
		// exclusive: the transaction is the call of action.
		"transaction": func(s *lua.State) (int, error) {
			if _, err := self[*serialClient](r, s, "transaction"); err != nil {
				return 0, err
			}
			if s.Type(2) != lua.TypeFunction {
				return 0, fmt.Errorf("bad argument #1 to 'transaction' (function expected, got %s)", s.Type(2))
			}
			s.SetTop(2)
			if err := s.Call(0, 1, 0); err != nil {
				return pushErr(s, err)
			}
			return 1, nil
		},
	}, true)
	r.setTable("serial", fns{
		"new": func(s *lua.State) (int, error) {
			uri, err := argString(s, 1, "serial.new")
			if err != nil {
				return 0, err
			}
			u, err := url.Parse(uri)
			if err != nil || u.Scheme != "port" {
				return pushErr(s, fmt.Errorf("serial.new: connection URI %q: want port://NAME", uri))
			}
			name := u.Host + u.Opaque
			p, ok := r.opts.Ports[name]
			if !ok {
				return pushErr(s, fmt.Errorf("serial.new: UCM port %q is not available on this host (map it to a serial device with --port %s=/dev/ttyUSB0)", name, name))
			}
			c, err := openSerial(name, p)
			if err != nil {
				return pushErr(s, fmt.Errorf("serial.new: %w", err))
			}
			r.pushObject("serial", c)
			return 1, nil
		},
	})
}
