//go:build lua

package luarun

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/url"
	"strings"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/edk-go/edk/driver/modbus"
	"github.com/edk-go/edk/lua"
)

// v1 error codes. 0 and 1 (timeout) are what blueprints test; Enapter
// publishes no full table, so the rest are edk's own: 10 + the Modbus
// exception code for exceptions, 2 for a broken link, 3 for a bad reply,
// 4 for a bad argument, 5 for a port that is not available on this host.
const (
	codeOK          = 0
	codeTimeout     = 1
	codeConnection  = 2
	codeBadResponse = 3
	codeBadArgument = 4
	codeNoPort      = 5
	codeException   = 10
)

var v1Messages = map[int64]string{
	codeOK: "", codeTimeout: "timeout", codeConnection: "connection failed",
	codeBadResponse: "invalid response", codeBadArgument: "invalid argument",
	codeNoPort: errNoPort.Error(),
	11:         "illegal function", 12: "illegal data address", 13: "illegal data value",
	14: "server device failure", 15: "acknowledge", 16: "server device busy",
	18: "memory parity error", 20: "gateway path unavailable", 21: "gateway target device failed to respond",
}

func v1Code(err error) int64 {
	if errors.Is(err, errNoPort) {
		return codeNoPort
	}
	if code, ok := modbus.ExceptionCode(err); ok {
		return codeException + int64(code)
	}
	var me mb.Error
	if errors.As(err, &me) {
		switch me {
		case mb.ErrRequestTimedOut:
			return codeTimeout
		case mb.ErrConfigurationError, mb.ErrUnexpectedParameters:
			return codeBadArgument
		}
		return codeBadResponse
	}
	if strings.Contains(err.Error(), "timeout") { // net errors: "i/o timeout"
		return codeTimeout
	}
	return codeConnection
}

// mbClient is one Modbus connection, opened on first use and reopened
// after a failure, so a device that went away is found again.
type mbClient struct {
	shared  bool // v1 modbustcp.new: one connection per address, never closed by the GC
	url     string
	serial  SerialPort // for rtu:// URLs
	c       *mb.ModbusClient
	timeout time.Duration
	open    bool
	closed  bool
	// unavailable: a v1 modbusrtu.new port no --port maps; every call
	// fails with errNoPort.
	unavailable bool
	// defaultTimeout (ms) is for v1 calls without a timeout argument:
	// modbusrtu.new's read_timeout; 0 means 1000.
	defaultTimeout int64
}

func (m *mbClient) defaultMS() int64 {
	if m.defaultTimeout > 0 {
		return m.defaultTimeout
	}
	return 1000
}

// quiet keeps simonvetter/modbus from writing to stdout; its errors come
// back to the script anyway.
var quiet = log.New(io.Discard, "", 0)

func newMBClient(u string) (*mbClient, error) { return newMBClientPort(u, SerialPort{}) }

func newMBClientPort(u string, p SerialPort) (*mbClient, error) {
	m := &mbClient{url: u, serial: p}
	if err := m.build(time.Second); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *mbClient) build(timeout time.Duration) error {
	conf := &mb.ClientConfiguration{URL: m.url, Timeout: timeout, Logger: quiet}
	if p := m.serial; p.Device != "" {
		conf.Speed, conf.DataBits, conf.StopBits = p.Baud, p.DataBits, p.StopBits
		conf.Parity = map[string]uint{"N": mb.PARITY_NONE, "E": mb.PARITY_EVEN, "O": mb.PARITY_ODD}[p.Parity]
	}
	c, err := mb.NewClient(conf)
	if err != nil {
		return err
	}
	m.c, m.timeout = c, timeout
	return nil
}

// setTimeout applies the script's per-request timeout; the library fixes
// it per connection, so a different one means a new connection.
func (m *mbClient) setTimeout(ms int64, limit time.Duration) error {
	if m.unavailable {
		return nil
	}
	d := time.Duration(ms) * time.Millisecond
	if ms <= 0 {
		d = time.Second
	}
	d = min(d, limit)
	if d == m.timeout {
		return nil
	}
	if m.open {
		_ = m.c.Close()
		m.open = false
	}
	return m.build(d)
}

func (m *mbClient) Close() error {
	if m.shared || m.unavailable {
		return nil
	}
	m.closed = true
	if m.open {
		m.open = false
		return m.c.Close()
	}
	return nil
}

func (m *mbClient) do(unit int64, fn func(c *mb.ModbusClient) error) error {
	if m.unavailable {
		return errNoPort
	}
	if unit < 0 || unit > 255 {
		return fmt.Errorf("unit id %d out of range 0..255", unit)
	}
	if !m.open {
		if err := m.c.Open(); err != nil {
			return fmt.Errorf("connect %s: %w", m.url, err)
		}
		m.open = true
	}
	_ = m.c.SetUnitId(uint8(unit))
	err := fn(m.c)
	if err != nil {
		var me mb.Error
		if !errors.As(err, &me) || me == mb.ErrRequestTimedOut || me == mb.ErrBadTransactionId || me == mb.ErrProtocolError {
			// the link may be broken or out of step: start afresh next time
			_ = m.c.Close()
			m.open = false
		}
	}
	return err
}

func checkRange(reg, count int64) error {
	if reg < 0 || reg > 65535 {
		return fmt.Errorf("register %d out of range 0..65535", reg)
	}
	if count < 1 || count > 125 || reg+count > 65536 {
		return fmt.Errorf("count %d out of range 1..125", count)
	}
	return nil
}

// read reads kind ("holdings", "inputs", "coils", "discrete_inputs").
func (m *mbClient) read(kind string, unit, reg, count int64) ([]any, error) {
	if err := checkRange(reg, count); err != nil {
		return nil, err
	}
	var out []any
	err := m.do(unit, func(c *mb.ModbusClient) error {
		var words []uint16
		var bits []bool
		var err error
		switch kind {
		case "holdings":
			words, err = c.ReadRegisters(uint16(reg), uint16(count), mb.HOLDING_REGISTER)
		case "inputs":
			words, err = c.ReadRegisters(uint16(reg), uint16(count), mb.INPUT_REGISTER)
		case "coils":
			bits, err = c.ReadCoils(uint16(reg), uint16(count))
		case "discrete_inputs":
			bits, err = c.ReadDiscreteInputs(uint16(reg), uint16(count))
		default:
			return fmt.Errorf("unknown read type %q", kind)
		}
		for _, w := range words {
			out = append(out, int64(w))
		}
		for _, b := range bits {
			v := int64(0)
			if b {
				v = 1
			}
			out = append(out, v)
		}
		return err
	})
	return out, err
}

func (m *mbClient) write(kind string, unit, reg int64, values []int64) error {
	if err := checkRange(reg, int64(max(len(values), 1))); err != nil {
		return err
	}
	for _, v := range values {
		if v < -32768 || v > 65535 {
			return fmt.Errorf("value %d does not fit a register", v)
		}
	}
	return m.do(unit, func(c *mb.ModbusClient) error {
		switch kind {
		case "holding":
			return c.WriteRegister(uint16(reg), uint16(values[0]))
		case "coil":
			return c.WriteCoil(uint16(reg), values[0] != 0)
		case "multiple_holdings":
			w := make([]uint16, len(values))
			for i, v := range values {
				w[i] = uint16(v)
			}
			return c.WriteRegisters(uint16(reg), w)
		case "multiple_coils":
			b := make([]bool, len(values))
			for i, v := range values {
				b[i] = v != 0
			}
			return c.WriteCoils(uint16(reg), b)
		}
		return fmt.Errorf("unknown write type %q", kind)
	})
}

func tableInts(s *lua.State, idx int) ([]int64, error) {
	v, err := s.ToValue(idx)
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return nil, errors.New("values must be a non-empty list of integers")
	}
	out := make([]int64, len(arr))
	for i, e := range arr {
		switch x := e.(type) {
		case int64:
			out[i] = x
		case float64:
			out[i] = int64(x)
		default:
			return nil, fmt.Errorf("values[%d] is not a number", i+1)
		}
	}
	return out, nil
}

// modbusURL turns an Enapter connection URI into simonvetter's; a port://
// name must be mapped to a host serial device (--port).
func (r *Runtime) modbusURL(uri string) (string, SerialPort, error) {
	u, err := url.Parse(uri)
	if err == nil && u.Scheme == "port" {
		name := u.Host + u.Opaque
		if p, ok := r.opts.Ports[name]; ok {
			return "rtu://" + p.Device, p, nil
		}
	}
	s, err := modbusTCPURL(uri)
	if err == nil {
		s = "tcp://" + r.tcpTarget(strings.TrimPrefix(s, "tcp://"))
	}
	return s, SerialPort{}, err
}

// tcpTarget applies ModbusTCPRewrites to host:port.
func (r *Runtime) tcpTarget(addr string) string {
	if to, ok := r.opts.ModbusTCPRewrites[addr]; ok {
		return to
	}
	return addr
}

func modbusTCPURL(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("connection URI %q: %w", uri, err)
	}
	switch u.Scheme {
	case "tcp":
		if u.Host == "" {
			return "", fmt.Errorf("connection URI %q: want tcp://host:port", uri)
		}
		host := u.Host
		if u.Port() == "" {
			host += ":502"
		}
		return "tcp://" + host, nil
	case "port", "gio":
		return "", fmt.Errorf("connection URI %q: UCM port %q is not available on this host (map it to a serial device with --port %s=/dev/ttyUSB0, or use tcp://host:port)", uri, u.Host+u.Opaque, u.Host+u.Opaque)
	}
	return "", fmt.Errorf("connection URI %q: unsupported scheme %q (want tcp://host:port)", uri, u.Scheme)
}

func (r *Runtime) installModbus() {
	v1 := r.bp.APIVersion() == 1
	readV3 := func(kind string) lua.Func {
		return func(s *lua.State) (int, error) {
			c, err := self[*mbClient](r, s, "read_"+kind)
			if err != nil {
				return 0, err
			}
			if err := c.setTimeout(optInt(s, 5, 1000), r.opts.CallTimeout); err != nil {
				return pushErr(s, err)
			}
			vals, err := c.read(kind, optInt(s, 2, 1), optInt(s, 3, 0), optInt(s, 4, 1))
			if err != nil {
				return pushErr(s, err)
			}
			_ = s.Push(vals)
			return 1, nil
		}
	}
	writeV3 := func(kind string) lua.Func {
		return func(s *lua.State) (int, error) {
			c, err := self[*mbClient](r, s, "write_"+kind)
			if err != nil {
				return 0, err
			}
			var vals []int64
			if strings.HasPrefix(kind, "multiple") {
				if vals, err = tableInts(s, 4); err != nil {
					s.PushString(err.Error())
					return 1, nil
				}
			} else {
				vals = []int64{optInt(s, 4, 0)}
			}
			if err := c.setTimeout(optInt(s, 5, 1000), r.opts.CallTimeout); err != nil {
				s.PushString(err.Error())
				return 1, nil
			}
			if err := c.write(kind, optInt(s, 2, 1), optInt(s, 3, 0), vals); err != nil {
				s.PushString(err.Error())
				return 1, nil
			}
			return 0, nil
		}
	}
	// v1 objects and globals: (table|nil, code) and code.
	readV1 := func(kind string, get func(s *lua.State) (*mbClient, int, error)) lua.Func {
		return func(s *lua.State) (int, error) {
			c, base, err := get(s)
			if err != nil {
				return 0, err
			}
			if c == nil {
				s.PushNil()
				s.PushInteger(codeNoPort)
				return 2, nil
			}
			if err := c.setTimeout(optInt(s, base+3, c.defaultMS()), r.opts.CallTimeout); err != nil {
				s.PushNil()
				s.PushInteger(codeConnection)
				return 2, nil
			}
			vals, err := c.read(kind, optInt(s, base, 1), optInt(s, base+1, 0), optInt(s, base+2, 1))
			if err != nil {
				s.PushNil()
				s.PushInteger(v1Code(err))
				return 2, nil
			}
			_ = s.Push(vals)
			s.PushInteger(0)
			return 2, nil
		}
	}
	writeV1 := func(kind string, get func(s *lua.State) (*mbClient, int, error)) lua.Func {
		return func(s *lua.State) (int, error) {
			c, base, err := get(s)
			if err != nil {
				return 0, err
			}
			if c == nil {
				s.PushInteger(codeNoPort)
				return 1, nil
			}
			var vals []int64
			if strings.HasPrefix(kind, "multiple") {
				if vals, err = tableInts(s, base+2); err != nil {
					s.PushInteger(codeBadArgument)
					return 1, nil
				}
			} else {
				if s.Type(base+2) != lua.TypeNumber {
					s.PushInteger(codeBadArgument)
					return 1, nil
				}
				vals = []int64{optInt(s, base+2, 0)}
			}
			if err := c.setTimeout(optInt(s, base+3, c.defaultMS()), r.opts.CallTimeout); err != nil {
				s.PushInteger(codeConnection)
				return 1, nil
			}
			if err := c.write(kind, optInt(s, base, 1), optInt(s, base+1, 0), vals); err != nil {
				s.PushInteger(v1Code(err))
				return 1, nil
			}
			s.PushInteger(0)
			return 1, nil
		}
	}
	errToStr := func(s *lua.State) (int, error) {
		code := optInt(s, 1, 0)
		msg, ok := v1Messages[code]
		if !ok {
			msg = fmt.Sprintf("unknown error %d", code)
		}
		s.PushString(msg)
		return 1, nil
	}
	objMethod := func(s *lua.State) (*mbClient, int, error) {
		c, err := self[*mbClient](r, s, "modbus method")
		return c, 2, err
	}
	r.class("modbus", fns{
		"read_holdings":           pick(v1, readV1("holdings", objMethod), readV3("holdings")),
		"read_inputs":             pick(v1, readV1("inputs", objMethod), readV3("inputs")),
		"read_coils":              pick(v1, readV1("coils", objMethod), readV3("coils")),
		"read_discrete_inputs":    pick(v1, readV1("discrete_inputs", objMethod), readV3("discrete_inputs")),
		"write_holding":           pick(v1, writeV1("holding", objMethod), writeV3("holding")),
		"write_coil":              pick(v1, writeV1("coil", objMethod), writeV3("coil")),
		"write_multiple_holdings": pick(v1, writeV1("multiple_holdings", objMethod), writeV3("multiple_holdings")),
		"write_multiple_coils":    pick(v1, writeV1("multiple_coils", objMethod), writeV3("multiple_coils")),
		"read":                    r.modbusBatchRead,
		"write":                   r.modbusBatchWrite,
		"close": func(s *lua.State) (int, error) {
			c, err := self[*mbClient](r, s, "close")
			if err != nil {
				return 0, err
			}
			_ = c.Close()
			return 0, nil
		},
	}, true)
	newTCP := func(s *lua.State) (int, error) {
		addr, err := argString(s, 1, "modbustcp.new")
		if err != nil {
			return 0, err
		}
		// v1 blueprints often call modbustcp.new on every poll: they
		// share one connection per address instead of one each.
		c, ok := r.tcpClients[addr]
		if !ok {
			if c, err = newMBClient("tcp://" + r.tcpTarget(addr)); err != nil {
				return pushErr(s, err)
			}
			c.shared = true
			r.tcpClients[addr] = c
		}
		r.pushObject("modbus", c)
		return 1, nil
	}
	r.setTable("modbustcp", fns{"new": newTCP, "err_to_str": errToStr})
	r.setTable("modbusrtu", fns{"err_to_str": errToStr}) // new: v1serial.go
	// v1 globals talk RTU over the port rs485.init / rs232.init set up,
	// when that UCM port is mapped to a host serial device (--port);
	// otherwise every call returns codeNoPort.
	noPort := func(s *lua.State) (*mbClient, int, error) { return r.v1Serial, 1, nil }
	serialInit := func(name string) lua.Func {
		return func(s *lua.State) (int, error) {
			p, ok := r.opts.Ports[name]
			if !ok {
				s.PushInteger(codeNoPort)
				return 1, nil
			}
			p.Baud = uint(optInt(s, 1, int64(p.Baud)))
			p.DataBits = uint(optInt(s, 2, int64(p.DataBits)))
			if s.Type(3) == lua.TypeString {
				p.Parity = strings.ToUpper(s.ToString(3))
			}
			p.StopBits = uint(optInt(s, 4, int64(p.StopBits)))
			if p.Parity != "N" && p.Parity != "E" && p.Parity != "O" {
				s.PushInteger(codeBadArgument)
				return 1, nil
			}
			c, err := newMBClientPort("rtu://"+p.Device, p)
			if err != nil {
				s.PushInteger(codeBadArgument)
				return 1, nil
			}
			if r.v1Serial != nil {
				r.v1Serial.shared = false
				_ = r.v1Serial.Close()
			}
			c.shared = true
			r.v1Serial = c
			r.setV1Line(name, p)
			s.PushInteger(0)
			return 1, nil
		}
	}
	for _, name := range []string{"rs485", "rs232"} {
		r.setTable(name, fns{"init": serialInit(name), "err_to_str": errToStr})
	}
	modbusFns := fns{
		"new": func(s *lua.State) (int, error) {
			uri, err := argString(s, 1, "modbus.new")
			if err != nil {
				return 0, err
			}
			u, port, err := r.modbusURL(uri)
			if err != nil {
				return pushErr(s, err)
			}
			c, err := newMBClientPort(u, port)
			if err != nil {
				return pushErr(s, err)
			}
			r.pushObject("modbus", c)
			return 1, nil
		},
		"err_to_str": errToStr,
	}
	for _, k := range []string{"holdings", "inputs", "coils", "discrete_inputs"} {
		modbusFns["read_"+k] = readV1(k, noPort)
	}
	for _, k := range []string{"holding", "coil", "multiple_holdings", "multiple_coils"} {
		modbusFns["write_"+k] = writeV1(k, noPort)
	}
	r.setTable("modbus", modbusFns)
}

func pick(v1 bool, a, b lua.Func) lua.Func {
	if v1 {
		return a
	}
	return b
}

// modbusBatchRead is client:read(queries): one result per query, data
// or errcode/errmsg.
func (r *Runtime) modbusBatchRead(s *lua.State) (int, error) {
	c, err := self[*mbClient](r, s, "read")
	if err != nil {
		return 0, err
	}
	qs, err := queries(s)
	if err != nil {
		return pushErr(s, err)
	}
	results := make([]any, len(qs))
	for i, q := range qs {
		kind, _ := q["type"].(string)
		if err := c.setTimeout(num(q["timeout"], 1000), r.opts.CallTimeout); err != nil {
			results[i] = map[string]any{"errcode": int64(codeConnection), "errmsg": err.Error()}
			continue
		}
		vals, err := c.read(kind, num(q["addr"], 1), num(q["reg"], -1), num(q["count"], 0))
		if err != nil {
			results[i] = map[string]any{"errcode": v1Code(err), "errmsg": err.Error()}
		} else {
			results[i] = map[string]any{"data": vals}
		}
	}
	_ = s.Push(results)
	return 1, nil
}

func (r *Runtime) modbusBatchWrite(s *lua.State) (int, error) {
	c, err := self[*mbClient](r, s, "write")
	if err != nil {
		return 0, err
	}
	qs, err := queries(s)
	if err != nil {
		return pushErr(s, err)
	}
	results := make([]any, len(qs))
	for i, q := range qs {
		kind, _ := q["type"].(string)
		var vals []int64
		if arr, ok := q["values"].([]any); ok {
			for _, v := range arr {
				vals = append(vals, num(v, 0))
			}
		} else if q["value"] != nil {
			vals = []int64{num(q["value"], 0)}
		}
		if len(vals) == 0 {
			results[i] = map[string]any{"errcode": int64(codeBadArgument), "errmsg": "value(s) missing"}
			continue
		}
		if err := c.setTimeout(num(q["timeout"], 1000), r.opts.CallTimeout); err != nil {
			results[i] = map[string]any{"errcode": int64(codeConnection), "errmsg": err.Error()}
			continue
		}
		if err := c.write(kind, num(q["addr"], 1), num(q["reg"], -1), vals); err != nil {
			results[i] = map[string]any{"errcode": v1Code(err), "errmsg": err.Error()}
		} else {
			results[i] = map[string]any{}
		}
	}
	_ = s.Push(results)
	return 1, nil
}

func queries(s *lua.State) ([]map[string]any, error) {
	v, err := s.ToValue(2)
	if err != nil {
		return nil, fmt.Errorf("queries: %w", err)
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, errors.New("queries must be a list of tables")
	}
	out := make([]map[string]any, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("query #%d is not a table", i+1)
		}
		out[i] = m
	}
	return out, nil
}

func num(v any, def int64) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	}
	return def
}
