//go:build lua

package luarun

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/goburrow/serial"

	"github.com/edk-go/edk/lua"
	"github.com/edk-go/edk/mqttapi"
)

// maxV1Frame bounds one rs485/rs232 send and one receive. Enapter does
// not publish the UCM's buffer size; 4 KiB is far above any request or
// answer of the serial devices blueprints talk to.
const maxV1Frame = 4096

// errNoPort is a UCM port (or a v1 modbusrtu device) that no --port maps
// to a serial device of this host.
var errNoPort = errors.New("port is not available on this host (map it to a serial device with --port NAME=/dev/ttyUSB0)")

// v1Line is a v1 rs485 / rs232 port for raw send / receive: the line
// settings rs485.init gave (or --port's) and the device, opened on first
// use and reopened after an I/O error.
type v1Line struct {
	name string
	port SerialPort
	conn *serialClient
}

func (l *v1Line) open() error {
	if l.conn != nil {
		return nil
	}
	c, err := openSerial(l.name, l.port)
	if err != nil {
		return err
	}
	l.conn = c
	return nil
}

func (l *v1Line) Close() error {
	if l.conn == nil {
		return nil
	}
	err := l.conn.Close()
	l.conn = nil
	return err
}

// receive waits up to timeout for the first byte, then takes bytes until
// the line has been quiet for one poll (the end of the device's answer)
// or maxV1Frame arrived.
func (l *v1Line) receive(timeout time.Duration) ([]byte, int64) {
	if err := l.open(); err != nil {
		return nil, codeConnection
	}
	buf := make([]byte, 0, 256)
	chunk := make([]byte, 256)
	deadline := time.Now().Add(timeout)
	for len(buf) < maxV1Frame {
		n, err := l.conn.p.Read(chunk[:min(len(chunk), maxV1Frame-len(buf))])
		if n > 0 {
			buf = append(buf, chunk[:n]...)
		}
		switch {
		case errors.Is(err, serial.ErrTimeout):
			if len(buf) > 0 {
				return buf, codeOK
			}
			if time.Now().After(deadline) {
				return nil, codeTimeout
			}
		case err != nil || n <= 0:
			// EIO or end of file: the other side of the line is gone
			_ = l.Close()
			if len(buf) > 0 {
				return buf, codeOK
			}
			return nil, codeConnection
		}
	}
	return buf, codeOK
}

func (l *v1Line) send(data []byte) int64 {
	if err := l.open(); err != nil {
		return codeConnection
	}
	for len(data) > 0 {
		n, err := l.conn.p.Write(data)
		if err != nil || n <= 0 {
			_ = l.Close()
			return codeConnection
		}
		data = data[n:]
	}
	return codeOK
}

// v1Line returns the raw line of a v1 port, nil when it is not mapped.
func (r *Runtime) v1Line(name string) *v1Line {
	if l, ok := r.v1Lines[name]; ok {
		return l
	}
	p, ok := r.opts.Ports[name]
	if !ok {
		return nil
	}
	l := &v1Line{name: name, port: p}
	r.v1Lines[name] = l
	return l
}

// setV1Line applies rs485.init / rs232.init's settings to the raw line.
func (r *Runtime) setV1Line(name string, p SerialPort) {
	if l, ok := r.v1Lines[name]; ok {
		_ = l.Close()
	}
	r.v1Lines[name] = &v1Line{name: name, port: p}
}

// installV1Serial adds rs485/rs232 send and receive (v1: return codes,
// 0 is success) and modbusrtu.new.
func (r *Runtime) installV1Serial() {
	for _, name := range []string{"rs485", "rs232"} {
		r.setTable(name, fns{
			// send(data) → code
			"send": func(s *lua.State) (int, error) {
				l := r.v1Line(name)
				switch {
				case l == nil:
					r.warnNoPort(name+".send", name)
					s.PushInteger(codeNoPort)
				case s.Type(1) != lua.TypeString || len(s.ToString(1)) > maxV1Frame:
					s.PushInteger(codeBadArgument)
				default:
					s.PushInteger(l.send([]byte(s.ToString(1))))
				}
				return 1, nil
			},
			// receive(timeout_ms) → data | nil, code
			"receive": func(s *lua.State) (int, error) {
				l := r.v1Line(name)
				ms := optInt(s, 1, 1000)
				switch {
				case l == nil:
					r.warnNoPort(name+".receive", name)
					s.PushNil()
					s.PushInteger(codeNoPort)
				case (s.Type(1) != lua.TypeNumber && s.Type(1) != lua.TypeNil) || ms < 0:
					s.PushNil()
					s.PushInteger(codeBadArgument)
				default:
					data, code := l.receive(min(time.Duration(ms)*time.Millisecond, r.opts.CallTimeout))
					if code != codeOK {
						s.PushNil()
					} else {
						s.PushString(string(data))
					}
					s.PushInteger(code)
				}
				return 2, nil
			},
		})
	}
	r.setTable("modbusrtu", fns{"new": r.modbusRTUNew})
}

// modbusRTUNew is v1 modbusrtu.new(port, {baud_rate, data_bits, parity,
// stop_bits, read_timeout}): a Modbus RTU client with modbustcp.new's
// methods on a --port mapped device. port is what the script names (a
// device path such as /dev/ttyUSB0, or rs485); unmapped, it is a client
// whose every call answers code 5, so a script that does not check for
// nil keeps running.
func (r *Runtime) modbusRTUNew(s *lua.State) (int, error) {
	name, err := argString(s, 1, "modbusrtu.new")
	if err != nil {
		return 0, err
	}
	name = strings.TrimPrefix(name, "port://")
	p, ok := r.opts.Ports[name]
	if !ok {
		r.warnNoPort("modbusrtu.new", name)
		r.pushObject("modbus", &mbClient{unavailable: true})
		return 1, nil
	}
	readTimeout := int64(1000)
	if s.Type(2) == lua.TypeTable {
		v, err := s.ToValue(2)
		if err != nil {
			return 0, fmt.Errorf("modbusrtu.new: options: %w", err)
		}
		opts, _ := v.(map[string]any)
		if p, err = rtuOptions(p, opts); err != nil {
			return 0, fmt.Errorf("modbusrtu.new: %w", err)
		}
		if t, ok := opts["read_timeout"]; ok {
			readTimeout = num(t, 1000)
		}
	}
	// Blueprints call modbusrtu.new on every poll: one connection per
	// device and line settings, as for modbustcp.new.
	key := fmt.Sprintf("rtu:%s:%d:%d:%s:%d", p.Device, p.Baud, p.DataBits, p.Parity, p.StopBits)
	c, ok := r.tcpClients[key]
	if !ok {
		if c, err = newMBClientPort("rtu://"+p.Device, p); err != nil {
			s.PushNil()
			return 1, nil
		}
		c.shared = true
		r.tcpClients[key] = c
	}
	c.defaultTimeout = readTimeout
	r.pushObject("modbus", c)
	return 1, nil
}

// rtuOptions applies a modbusrtu.new options table; numbers may come as
// strings (tostring(stop_bits) is common in blueprints).
func rtuOptions(p SerialPort, o map[string]any) (SerialPort, error) {
	for key, dst := range map[string]*uint{"baud_rate": &p.Baud, "data_bits": &p.DataBits, "stop_bits": &p.StopBits} {
		v, ok := o[key]
		if !ok {
			continue
		}
		var n int64
		switch x := v.(type) {
		case int64:
			n = x
		case float64:
			n = int64(x)
		case string:
			var err error
			if n, err = strconv.ParseInt(x, 10, 64); err != nil {
				return p, fmt.Errorf("%s %q is not a number", key, x)
			}
		default:
			return p, fmt.Errorf("%s must be a number", key)
		}
		if n < 1 {
			return p, fmt.Errorf("%s %d must be positive", key, n)
		}
		*dst = uint(n)
	}
	if v, ok := o["parity"].(string); ok {
		v = strings.ToUpper(v)
		if v != "N" && v != "E" && v != "O" {
			return p, fmt.Errorf("parity %q must be N, E or O", v)
		}
		p.Parity = v
	}
	return p, nil
}

// warnNoPort says once per port why its calls answer code 5.
func (r *Runtime) warnNoPort(fn, name string) {
	if r.warnedPorts[name] {
		return
	}
	r.warnedPorts[name] = true
	msg := fmt.Sprintf("%s: %s is not available on this host (map it to a serial device with --port %s=/dev/ttyUSB0)", fn, name, name)
	r.log.Warn(msg)
	r.scriptLog(mqttapi.SeverityWarning, msg, false)
}
