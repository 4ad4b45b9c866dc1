package modbus

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/internal/suggest"
	"github.com/edk-go/edk/internal/yamlproblem"
)

// Problem is one thing wrong with a register map; Path is the dotted key,
// e.g. telemetry.soc.type.
type Problem = yamlproblem.Problem

// MapError lists every problem found in a register map.
type MapError struct {
	File     string
	Problems []Problem
}

func (e *MapError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates the register map in a YAML file. The error of a
// bad map is a *MapError naming the line and key of every problem.
func Load(path string) (*Map, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("modbus: read register map: %w", err)
	}
	return Parse(path, data)
}

// maxMapSize bounds the input of Parse.
const maxMapSize = 4 << 20

// Parse validates a register map. file is used in error messages only.
func Parse(file string, data []byte) (*Map, error) {
	l := &loader{file: file}
	if len(data) > maxMapSize {
		l.add(nil, "", "the register map is larger than %d bytes", maxMapSize)
		return nil, l.err()
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.probs = append(l.probs, yamlproblem.Syntax(file, err))
		return nil, l.err()
	}
	if len(doc.Content) == 0 {
		l.add(nil, "", "the register map is empty; it needs at least a modbus section")
		return nil, l.err()
	}
	m := l.loadMap(resolve(doc.Content[0]))
	if len(l.probs) > 0 {
		return nil, l.err()
	}
	return m, nil
}

type loader struct {
	file  string
	probs []Problem
	conn  Connection
}

func (l *loader) err() error {
	yamlproblem.Sort(l.probs)
	return &MapError{File: l.file, Problems: l.probs}
}

func (l *loader) add(n *yaml.Node, key, format string, args ...any) {
	l.probs = append(l.probs, yamlproblem.At(l.file, n, key, format, args...))
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fields walks a mapping, calling fn for each key it knows and reporting the
// others. It reports false when n is not a mapping.
func (l *loader) fields(n *yaml.Node, path string, known []string, fn func(key string, k, v *yaml.Node)) bool {
	if n == nil || n.Kind != yaml.MappingNode {
		l.add(n, path, "want a mapping of keys (%s)", strings.Join(known, ", "))
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if known != nil && !slices.Contains(known, k.Value) {
			if s := suggest.Closest(k.Value, known); s != "" {
				l.add(k, join(path, k.Value), "unknown key; did you mean %s? (known keys: %s)", s, strings.Join(known, ", "))
			} else {
				l.add(k, join(path, k.Value), "unknown key; known keys: %s", strings.Join(known, ", "))
			}
			continue
		}
		fn(k.Value, k, v)
	}
	return true
}

// entries walks a mapping of names (attributes, commands, alerts) in file order.
func (l *loader) entries(n *yaml.Node, path string, fn func(name string, k, v *yaml.Node)) {
	if n == nil || n.Kind != yaml.MappingNode {
		l.add(n, path, "want a mapping of names")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if !nameRE.MatchString(k.Value) {
			l.add(k, join(path, k.Value), "a name must start with a letter and hold only letters, digits and _")
			continue
		}
		fn(k.Value, k, v)
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,127}$`)

func (l *loader) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode {
		l.add(n, path, "want %s", want)
		return "", false
	}
	return n.Value, true
}

func (l *loader) integer(n *yaml.Node, path string, lo, hi int64) (int64, bool) {
	s, ok := l.scalar(n, path, "an integer")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
	if err != nil || n.Tag == "!!str" && n.Style != 0 {
		l.add(n, path, "want an integer, got %q", clip(s))
		return 0, false
	}
	if v < lo || v > hi {
		l.add(n, path, "%d is out of range %d..%d", v, lo, hi)
		return 0, false
	}
	return v, true
}

func (l *loader) number(n *yaml.Node, path string) (float64, bool) {
	s, ok := l.scalar(n, path, "a number")
	if !ok {
		return 0, false
	}
	if i, err := strconv.ParseInt(s, 0, 64); err == nil {
		return float64(i), true
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || n.Tag == "!!str" && n.Style != 0 {
		l.add(n, path, "want a number, got %q", clip(s))
		return 0, false
	}
	return v, true
}

func (l *loader) boolean(n *yaml.Node, path string) (bool, bool) {
	s, ok := l.scalar(n, path, "true or false")
	if !ok {
		return false, false
	}
	switch s {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	l.add(n, path, "want true or false, got %q", clip(s))
	return false, false
}

func (l *loader) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := l.scalar(n, path, "a duration such as 500ms or 2s")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		l.add(n, path, "want a positive duration such as 500ms or 2s, got %q", clip(s))
		return 0, false
	}
	if d < time.Millisecond {
		l.add(n, path, "%s is too short; use at least 1ms", d)
		return 0, false
	}
	return d, true
}

func (l *loader) order(n *yaml.Node, path string) (Order, bool) {
	s, ok := l.scalar(n, path, "big or little")
	if !ok {
		return 0, false
	}
	switch s {
	case "big", "high_first", "abcd":
		return Big, true
	case "little", "low_first", "dcba":
		return Little, true
	}
	l.add(n, path, "want big or little, got %q", clip(s))
	return 0, false
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (l *loader) loadMap(root *yaml.Node) *Map {
	m := &Map{}
	var sections = map[string]*yaml.Node{}
	l.fields(root, "", []string{"modbus", "telemetry", "properties", "commands", "alerts"}, func(key string, k, v *yaml.Node) {
		sections[key] = v
	})
	if root == nil || root.Kind != yaml.MappingNode {
		return m
	}
	if sections["modbus"] == nil {
		l.add(root, "modbus", "missing: say how to reach the device, e.g. modbus: {address: tcp://192.168.1.50:502}")
	} else {
		l.loadConnection(sections["modbus"], m)
	}
	m.Connection = l.conn
	if n := sections["telemetry"]; n != nil {
		l.entries(n, "telemetry", func(name string, k, v *yaml.Node) {
			if name == "timestamp" || name == "alerts" {
				l.add(k, "telemetry."+name, "%q is reserved by the Enapter protocol; rename the attribute", name)
				return
			}
			if val, ok := l.loadValue(v, "telemetry."+name, name, true); ok {
				m.Telemetry = append(m.Telemetry, val)
			}
		})
	}
	if n := sections["properties"]; n != nil {
		l.entries(n, "properties", func(name string, k, v *yaml.Node) {
			if name == "timestamp" || name == "alerts" {
				l.add(k, "properties."+name, "%q is reserved by the Enapter protocol; rename the property", name)
				return
			}
			if val, ok := l.loadValue(v, "properties."+name, name, false); ok {
				m.Properties = append(m.Properties, val)
			}
		})
	}
	if n := sections["commands"]; n != nil {
		l.entries(n, "commands", func(name string, k, v *yaml.Node) {
			if c, ok := l.loadCommand(v, "commands."+name, name); ok {
				c.Line = k.Line
				m.Commands = append(m.Commands, c)
			}
		})
	}
	if n := sections["alerts"]; n != nil {
		l.entries(n, "alerts", func(name string, k, v *yaml.Node) {
			if name == driver.CommunicationError {
				l.add(k, "alerts."+name, "%q is reserved: the driver raises it itself when a read fails", name)
				return
			}
			if a, ok := l.loadAlert(v, "alerts."+name, name, m); ok {
				a.Line = k.Line
				m.Alerts = append(m.Alerts, a)
			}
		})
	}
	if len(m.Telemetry)+len(m.Properties)+len(m.Commands)+len(m.Alerts) == 0 && len(l.probs) == 0 {
		l.add(root, "", "the map declares no telemetry, properties, commands or alerts")
	}
	l.checkOverlaps(m)
	l.checkLimits(m)
	byName := func(a, b Value) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(m.Telemetry, byName)
	slices.SortFunc(m.Properties, byName)
	slices.SortFunc(m.Commands, func(a, b Command) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(m.Alerts, func(a, b Alert) int { return strings.Compare(a.Name, b.Name) })
	return m
}

func (l *loader) loadConnection(n *yaml.Node, m *Map) {
	c := Connection{
		UnitID: DefaultUnitID, Timeout: DefaultTimeout, Poll: DefaultPoll,
		MaxRegisters: DefaultMaxRegisters, MaxBits: DefaultMaxBits, MaxGap: DefaultMaxGap,
	}
	var addrNode, gapsNode *yaml.Node
	l.fields(n, "modbus", []string{"address", "unit_id", "timeout", "poll", "max_registers", "max_bits", "max_gap", "byte_order", "word_order", "gaps"}, func(key string, k, v *yaml.Node) {
		p := "modbus." + key
		switch key {
		case "address":
			addrNode = v
			if s, ok := l.scalar(v, p, "an address such as tcp://192.168.1.50:502"); ok {
				c.Address = s
			}
		case "unit_id":
			if i, ok := l.integer(v, p, 0, 255); ok {
				c.UnitID = uint8(i)
			}
		case "timeout":
			if d, ok := l.duration(v, p); ok {
				c.Timeout = d
			}
		case "poll":
			if d, ok := l.duration(v, p); ok {
				c.Poll = d
			}
		case "max_registers":
			if i, ok := l.integer(v, p, 1, 125); ok {
				c.MaxRegisters = uint16(i)
			}
		case "max_bits":
			if i, ok := l.integer(v, p, 1, 2000); ok {
				c.MaxBits = uint16(i)
			}
		case "max_gap":
			if i, ok := l.integer(v, p, 0, 124); ok {
				c.MaxGap = uint16(i)
			}
		case "byte_order":
			c.ByteOrder, _ = l.order(v, p)
		case "word_order":
			c.WordOrder, _ = l.order(v, p)
		case "gaps":
			gapsNode = v // after unit_id is known
		}
	})
	if n != nil && n.Kind == yaml.MappingNode {
		if addrNode == nil {
			l.add(n, "modbus.address", "missing: e.g. tcp://192.168.1.50:502 or rtu:///dev/ttyUSB0?baud=9600")
		} else if c.Address != "" {
			if err := parseAddress(&c); err != nil {
				l.add(addrNode, "modbus.address", "%v", err)
			}
		}
	}
	l.conn = c
	if gapsNode != nil {
		l.loadGaps(gapsNode, "modbus.gaps", m)
	}
}

// parseAddress checks c.Address and fills in the serial settings.
func parseAddress(c *Connection) error {
	u, err := url.Parse(c.Address)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("%q is not an address; use tcp://host:502, rtuovertcp://host:port or rtu:///dev/ttyUSB0?baud=9600", clip(c.Address))
	}
	switch u.Scheme {
	case "tcp", "rtuovertcp":
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" {
			return fmt.Errorf("%q needs a host and a port, e.g. %s://192.168.1.50:502", clip(c.Address), u.Scheme)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("port %q is not a number in 1..65535", clip(port))
		}
		if u.RawQuery != "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("a %s address takes no path or options", u.Scheme)
		}
	case "rtu":
		if u.Path == "" {
			return fmt.Errorf("%q names no serial device; use rtu:///dev/ttyUSB0?baud=9600", clip(c.Address))
		}
		c.Baud, c.DataBits, c.StopBits = DefaultBaud, 8, 0
		q := u.Query()
		for key, vals := range q {
			v := vals[len(vals)-1]
			switch key {
			case "baud":
				b, err := strconv.ParseUint(v, 10, 32)
				if err != nil || b < 300 || b > 4000000 {
					return fmt.Errorf("baud=%q: want a speed such as 9600 or 19200", clip(v))
				}
				c.Baud = uint(b)
			case "data_bits":
				if v != "7" && v != "8" {
					return fmt.Errorf("data_bits=%q: want 7 or 8", clip(v))
				}
				c.DataBits = uint(v[0] - '0')
			case "stop_bits":
				if v != "1" && v != "2" {
					return fmt.Errorf("stop_bits=%q: want 1 or 2", clip(v))
				}
				c.StopBits = uint(v[0] - '0')
			case "parity":
				switch strings.ToUpper(v) {
				case "N", "NONE":
					c.Parity = 0
				case "E", "EVEN":
					c.Parity = 1
				case "O", "ODD":
					c.Parity = 2
				default:
					return fmt.Errorf("parity=%q: want N, E or O", clip(v))
				}
			default:
				return fmt.Errorf("unknown option %q; rtu addresses take baud, data_bits, parity and stop_bits", clip(key))
			}
		}
		if c.StopBits == 0 {
			c.StopBits = 1
			if c.Parity == 0 {
				c.StopBits = 2 // what the Modbus serial line spec asks for without parity
			}
		}
	default:
		return fmt.Errorf("unknown scheme %q; use tcp, rtu or rtuovertcp", clip(u.Scheme))
	}
	return nil
}

func (l *loader) loadGaps(n *yaml.Node, path string, m *Map) {
	if n == nil || n.Kind != yaml.SequenceNode {
		l.add(n, path, "want a list such as [{table: input, from: 30100, to: 30199}]")
		return
	}
	for i, e := range n.Content {
		e = resolve(e)
		p := fmt.Sprintf("%s[%d]", path, i)
		g := Gap{Unit: l.conn.UnitID, Table: Holding}
		var from, to = -1, -1
		ok := l.fields(e, p, []string{"table", "from", "to", "unit_id"}, func(key string, k, v *yaml.Node) {
			switch key {
			case "table":
				if s, ok := l.scalar(v, p+".table", "a table"); ok {
					t, err := ParseTable(s)
					if err != nil {
						l.add(v, p+".table", "%v", err)
					}
					g.Table = t
				}
			case "from":
				if x, ok := l.integer(v, p+".from", 0, 65535); ok {
					from = int(x)
				}
			case "to":
				if x, ok := l.integer(v, p+".to", 0, 65535); ok {
					to = int(x)
				}
			case "unit_id":
				if x, ok := l.integer(v, p+".unit_id", 0, 255); ok {
					g.Unit = uint8(x)
				}
			}
		})
		if !ok {
			continue
		}
		if from < 0 || to < 0 {
			l.add(e, p, "a gap needs from and to")
			continue
		}
		if to < from {
			l.add(e, p, "to (%d) is before from (%d)", to, from)
			continue
		}
		g.From, g.To = uint16(from), uint16(to)
		m.Gaps = append(m.Gaps, g)
	}
}

var valueKeys = []string{"register", "table", "type", "length", "bit", "byte_order", "word_order", "scale", "offset", "map", "unavailable", "poll", "unit_id", "unit", "description"}

// loadValue reads one value definition. Telemetry values may have a poll.
func (l *loader) loadValue(n *yaml.Node, path, name string, telemetry bool) (Value, bool) {
	v := Value{
		Name: name, Unit: l.conn.UnitID, Table: Holding, Type: Uint16, Bit: -1,
		ByteOrder: l.conn.ByteOrder, WordOrder: l.conn.WordOrder, Scale: 1,
	}
	v.key = path
	if n != nil {
		v.Line, v.col = n.Line, n.Column
	}
	nprobs := len(l.probs)
	var regNode, typeNode, tableNode, lengthNode, bitNode, mapNode *yaml.Node
	haveReg, haveType := false, false
	ok := l.fields(n, path, valueKeys, func(key string, k, x *yaml.Node) {
		p := path + "." + key
		switch key {
		case "register":
			regNode = x
			if i, ok := l.integer(x, p, 0, 65535); ok {
				v.Register, haveReg = uint16(i), true
			}
		case "table":
			tableNode = x
			if s, ok := l.scalar(x, p, "holding, input, coil or discrete_input"); ok {
				t, err := ParseTable(s)
				if err != nil {
					l.add(x, p, "%v", err)
				}
				v.Table = t
			}
		case "type":
			typeNode = x
			if s, ok := l.scalar(x, p, "a type"); ok {
				t, err := ParseType(s)
				if err != nil {
					l.add(x, p, "%v", err)
				}
				v.Type, haveType = t, err == nil
			}
		case "length":
			lengthNode = x
			if i, ok := l.integer(x, p, 1, 125); ok {
				v.Length = uint16(i)
			}
		case "bit":
			bitNode = x
			if i, ok := l.integer(x, p, 0, 15); ok {
				v.Bit = int(i)
			}
		case "byte_order":
			v.ByteOrder, _ = l.order(x, p)
		case "word_order":
			v.WordOrder, _ = l.order(x, p)
		case "scale":
			if f, ok := l.number(x, p); ok {
				if f == 0 {
					l.add(x, p, "scale 0 would turn every reading into 0; leave it out for 1")
				}
				v.Scale = f
			}
		case "offset":
			v.Offset, _ = l.number(x, p)
		case "map":
			mapNode = x
			v.Map = l.loadEnum(x, p)
		case "unavailable":
			v.Unavailable = l.loadUnavailable(x, p)
		case "poll":
			if !telemetry {
				l.add(k, p, "only telemetry values have a poll interval; properties are read when they are sent")
				return
			}
			v.Poll, _ = l.duration(x, p)
		case "unit_id":
			if i, ok := l.integer(x, p, 0, 255); ok {
				v.Unit = uint8(i)
			}
		case "unit", "description":
			l.scalar(x, p, "text")
		}
	})
	if !ok {
		return v, false
	}
	if !haveReg && regNode == nil {
		l.add(n, path+".register", "missing: the register (or coil) address of the value")
	}
	if v.Poll == 0 && telemetry {
		v.Poll = l.conn.Poll
	}
	if v.Table.IsBits() {
		if haveType && v.Type != Bool {
			l.add(typeNode, path+".type", "a %s is a single bit: use type bool (or leave type out)", v.Table)
		}
		v.Type = Bool
		if bitNode != nil {
			l.add(bitNode, path+".bit", "bit is for registers; a %s is a single bit already", v.Table)
		}
	} else {
		if !haveType && typeNode == nil && bitNode != nil {
			v.Type = Bool
		}
		if v.Type == Bool && v.Bit < 0 && bitNode == nil {
			l.add(n, path+".bit", "a bool in a register needs bit: 0..15 (or use table: coil or discrete_input)")
		}
		if v.Type != Bool && bitNode != nil && haveType {
			l.add(bitNode, path+".bit", "bit needs type bool, not %s", v.Type)
		}
		_ = tableNode
	}
	if v.Type == String {
		if lengthNode == nil {
			l.add(n, path+".length", "missing: a string needs its length in registers (2 characters each)")
		}
	} else if lengthNode != nil && haveType {
		l.add(lengthNode, path+".length", "length is only for strings; a %s takes %d register(s)", v.Type, v.Type.Words())
	}
	if v.Map != nil && !v.Type.isInteger() {
		l.add(mapNode, path+".map", "a map needs an integer type, not %s", v.Type)
	}
	if (v.Type == String || v.Type == Bool) && (v.Scale != 1 || v.Offset != 0) {
		l.add(n, path, "scale and offset apply to numbers, not to a %s", v.Type)
	}
	if v.Map != nil && (v.Scale != 1 || v.Offset != 0) {
		l.add(n, path, "a value with a map cannot also have scale or offset")
	}
	if haveReg && v.End() > 65535 {
		l.add(regNode, path+".register", "the value runs past register 65535 (%d registers from %d)", v.Count(), v.Register)
	}
	return v, len(l.probs) == nprobs
}

func (l *loader) loadEnum(n *yaml.Node, path string) map[int64]string {
	if n == nil || n.Kind != yaml.MappingNode {
		l.add(n, path, "want a mapping of raw values to names, e.g. {35: fault, 307: ok}")
		return nil
	}
	out := map[int64]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		raw, err := strconv.ParseInt(k.Value, 0, 64)
		if err != nil {
			l.add(k, path+"."+k.Value, "a map key must be an integer raw value")
			continue
		}
		s, ok := l.scalar(v, path+"."+k.Value, "a name")
		if !ok {
			continue
		}
		if _, dup := out[raw]; dup {
			l.add(k, path+"."+k.Value, "raw value %d is mapped twice", raw)
		}
		out[raw] = s
	}
	return out
}

func (l *loader) loadUnavailable(n *yaml.Node, path string) []uint64 {
	if n != nil && n.Kind == yaml.ScalarNode {
		n = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{n}, Line: n.Line, Column: n.Column}
	}
	if n == nil || n.Kind != yaml.SequenceNode {
		l.add(n, path, "want a raw value or a list of them, e.g. [0x8000]")
		return nil
	}
	var out []uint64
	for _, e := range n.Content {
		e = resolve(e)
		s, ok := l.scalar(e, path, "a raw integer")
		if !ok {
			continue
		}
		if u, err := strconv.ParseUint(s, 0, 64); err == nil {
			out = append(out, u)
		} else if i, err := strconv.ParseInt(s, 0, 64); err == nil {
			out = append(out, uint64(i))
		} else {
			l.add(e, path, "want a raw integer such as 0x8000, got %q", clip(s))
		}
	}
	return out
}

func (l *loader) loadCommand(n *yaml.Node, path, name string) (Command, bool) {
	c := Command{Name: name}
	nprobs := len(l.probs)
	var writesNode *yaml.Node
	ok := l.fields(n, path, []string{"description", "arguments", "write"}, func(key string, k, v *yaml.Node) {
		p := path + "." + key
		switch key {
		case "description":
			c.Description, _ = l.scalar(v, p, "text")
		case "arguments":
			l.entries(v, p, func(an string, k, av *yaml.Node) {
				if a, ok := l.loadArgument(av, p+"."+an, an); ok {
					c.Arguments = append(c.Arguments, a)
				}
			})
		case "write":
			writesNode = v
		}
	})
	if !ok {
		return c, false
	}
	if writesNode == nil {
		l.add(n, path+".write", "missing: what the command writes, e.g. write: {register: 40016, type: uint16, value: limit}")
		return c, false
	}
	ws := []*yaml.Node{writesNode}
	if writesNode.Kind == yaml.SequenceNode {
		ws = writesNode.Content
		if len(ws) == 0 {
			l.add(writesNode, path+".write", "the list of writes is empty")
		}
	}
	for i, w := range ws {
		p := path + ".write"
		if writesNode.Kind == yaml.SequenceNode {
			p = fmt.Sprintf("%s[%d]", p, i)
		}
		if wr, ok := l.loadWrite(resolve(w), p, c.Arguments); ok {
			c.Writes = append(c.Writes, wr)
		}
	}
	return c, len(l.probs) == nprobs
}

func (l *loader) loadArgument(n *yaml.Node, path, name string) (Argument, bool) {
	a := Argument{Name: name, Required: true}
	nprobs := len(l.probs)
	var defNode *yaml.Node
	l.fields(n, path, []string{"type", "min", "max", "required", "default", "description"}, func(key string, k, v *yaml.Node) {
		p := path + "." + key
		switch key {
		case "type":
			s, ok := l.scalar(v, p, "integer, float or boolean")
			if !ok {
				return
			}
			switch s {
			case "integer":
				a.Type = ArgInteger
			case "float", "number":
				a.Type = ArgFloat
			case "boolean":
				a.Type = ArgBoolean
			default:
				l.add(v, p, "unknown argument type %q; use integer, float or boolean", clip(s))
			}
		case "min":
			if f, ok := l.number(v, p); ok {
				a.Min = &f
			}
		case "max":
			if f, ok := l.number(v, p); ok {
				a.Max = &f
			}
		case "required":
			a.Required, _ = l.boolean(v, p)
		case "default":
			defNode = v
		case "description":
			l.scalar(v, p, "text")
		}
	})
	if a.Min != nil && a.Max != nil && *a.Min > *a.Max {
		l.add(n, path, "min (%g) is above max (%g)", *a.Min, *a.Max)
	}
	if defNode != nil {
		a.Required = false
		if a.Type == ArgBoolean {
			if b, ok := l.boolean(defNode, path+".default"); ok {
				a.Default = b
			}
		} else if f, ok := l.number(defNode, path+".default"); ok {
			if err := a.check(f); err != nil {
				l.add(defNode, path+".default", "%v", err)
			}
			a.Default = f
		}
	}
	return a, len(l.probs) == nprobs
}

func (l *loader) loadWrite(n *yaml.Node, path string, args []Argument) (Write, bool) {
	w := Write{Unit: l.conn.UnitID, Table: Holding, Type: Uint16, ByteOrder: l.conn.ByteOrder, WordOrder: l.conn.WordOrder, Scale: 1}
	if n != nil {
		w.Line = n.Line
	}
	nprobs := len(l.probs)
	var valNode, regNode, typeNode *yaml.Node
	ok := l.fields(n, path, []string{"register", "table", "type", "byte_order", "word_order", "scale", "offset", "value", "unit_id"}, func(key string, k, v *yaml.Node) {
		p := path + "." + key
		switch key {
		case "register":
			regNode = v
			if i, ok := l.integer(v, p, 0, 65535); ok {
				w.Register = uint16(i)
			}
		case "table":
			if s, ok := l.scalar(v, p, "holding or coil"); ok {
				switch s {
				case "holding":
					w.Table = Holding
				case "coil":
					w.Table, w.Type = Coil, Bool
				default:
					l.add(v, p, "only holding registers and coils can be written, not %q", clip(s))
				}
			}
		case "type":
			typeNode = v
			if s, ok := l.scalar(v, p, "a type"); ok {
				t, err := ParseType(s)
				if err != nil {
					l.add(v, p, "%v", err)
				} else if t == String {
					l.add(v, p, "strings cannot be written by a command")
				}
				w.Type = t
			}
		case "byte_order":
			w.ByteOrder, _ = l.order(v, p)
		case "word_order":
			w.WordOrder, _ = l.order(v, p)
		case "scale":
			if f, ok := l.number(v, p); ok {
				if f == 0 {
					l.add(v, p, "scale must not be 0")
				}
				w.Scale = f
			}
		case "offset":
			w.Offset, _ = l.number(v, p)
		case "value":
			valNode = v
		case "unit_id":
			if i, ok := l.integer(v, p, 0, 255); ok {
				w.Unit = uint8(i)
			}
		}
	})
	if !ok {
		return w, false
	}
	if regNode == nil {
		l.add(n, path+".register", "missing: the register (or coil) to write")
	}
	if w.Table == Coil && typeNode != nil && w.Type != Bool {
		l.add(typeNode, path+".type", "a coil is a single bit: use type bool (or leave type out)")
	}
	if w.Table == Holding && w.Type == Bool {
		l.add(typeNode, path+".type", "bool writes go to a coil (table: coil); write a whole register with an integer type")
	}
	if valNode == nil {
		l.add(n, path+".value", "missing: the argument name to write, or a constant")
		return w, false
	}
	s, ok := l.scalar(valNode, path+".value", "an argument name or a constant")
	if !ok {
		return w, false
	}
	switch {
	case valNode.Tag == "!!bool":
		b, _ := l.boolean(valNode, path+".value")
		w.Const = b
	case valNode.Tag == "!!int" || valNode.Tag == "!!float":
		f, _ := l.number(valNode, path+".value")
		w.Const = f
	default:
		i := slices.IndexFunc(args, func(a Argument) bool { return a.Name == s })
		if i < 0 {
			names := make([]string, len(args))
			for j, a := range args {
				names[j] = a.Name
			}
			l.add(valNode, path+".value", "%q is not an argument of the command (arguments: %s)", clip(s), strings.Join(names, ", "))
			return w, false
		}
		w.Argument = s
		if (args[i].Type == ArgBoolean) != (w.Type == Bool) {
			l.add(valNode, path+".value", "argument %q is %s but the write is %s", s, args[i].Type, w.Type)
		}
	}
	if _, isBool := w.Const.(bool); isBool != (w.Type == Bool) && w.Const != nil {
		l.add(valNode, path+".value", "constant %s does not fit a %s write", s, w.Type)
	}
	if f, isNum := w.Const.(float64); isNum && w.Type.isNumber() {
		if _, err := w.encode(f); err != nil {
			l.add(valNode, path+".value", "%v", err)
		}
	}
	if regNode != nil && int(w.Register)+int(w.Count())-1 > 65535 {
		l.add(regNode, path+".register", "the write runs past register 65535")
	}
	return w, len(l.probs) == nprobs
}

func (l *loader) loadAlert(n *yaml.Node, path, name string, m *Map) (Alert, bool) {
	a := Alert{Name: name}
	if n == nil || n.Kind != yaml.MappingNode {
		l.add(n, path, `want {when: "temperature > 80"} or {register: 30201, table: input, bit: 3}`)
		return a, false
	}
	var whenNode *yaml.Node
	rest := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Value == "when" {
			whenNode = resolve(n.Content[i+1])
			continue
		}
		if k.Value == "description" {
			continue
		}
		rest.Content = append(rest.Content, k, n.Content[i+1])
	}
	switch {
	case whenNode != nil && len(rest.Content) > 0:
		l.add(rest.Content[0], path+"."+rest.Content[0].Value, "an alert has either when or a register bit, not both")
		return a, false
	case whenNode != nil:
		s, ok := l.scalar(whenNode, path+".when", "an expression such as \"temperature > 80\"")
		if !ok {
			return a, false
		}
		e, err := parseExpr(s)
		if err != nil {
			l.add(whenNode, path+".when", "%v", err)
			return a, false
		}
		for _, id := range e.idents(nil) {
			if !slices.ContainsFunc(m.Telemetry, func(v Value) bool { return v.Name == id }) {
				l.add(whenNode, path+".when", "%q is not a telemetry attribute of this map", id)
				return a, false
			}
		}
		a.When, a.expr = s, e
		return a, true
	default:
		v, ok := l.loadValue(rest, path, "alert:"+name, true)
		if !ok {
			return a, false
		}
		if v.Type != Bool {
			l.add(n, path, "a register alert needs bit: 0..15 (or table: coil or discrete_input)")
			return a, false
		}
		a.Source = &v
		return a, true
	}
}

// checkOverlaps reports values of the same unit and table that share
// registers. Bits of a register may share it with anything.
func (l *loader) checkOverlaps(m *Map) {
	var all []*Value
	for i := range m.Telemetry {
		all = append(all, &m.Telemetry[i])
	}
	for i := range m.Properties {
		all = append(all, &m.Properties[i])
	}
	for _, a := range m.Alerts {
		if a.Source != nil {
			all = append(all, a.Source)
		}
	}
	slices.SortStableFunc(all, func(a, b *Value) int {
		if a.Unit != b.Unit {
			return int(a.Unit) - int(b.Unit)
		}
		if a.Table != b.Table {
			return int(a.Table) - int(b.Table)
		}
		return int(a.Register) - int(b.Register)
	})
	for i, a := range all {
		for _, b := range all[i+1:] {
			if b.Unit != a.Unit || b.Table != a.Table || int(b.Register) > a.End() {
				break
			}
			if a.Bit >= 0 || b.Bit >= 0 {
				if a.Bit >= 0 && a.Bit == b.Bit && a.Register == b.Register {
					l.add(&yaml.Node{Line: b.Line, Column: b.col}, b.key, "bit %d of %s register %d is also %s (line %d)", b.Bit, b.Table, b.Register, a.key, a.Line)
				}
				continue
			}
			l.add(&yaml.Node{Line: b.Line, Column: b.col}, b.key, "%s registers %d..%d overlap %s (line %d, registers %d..%d); check the addresses and types",
				b.Table, b.Register, b.End(), a.key, a.Line, a.Register, a.End())
		}
	}
	for _, g := range m.Gaps {
		for _, v := range all {
			if v.Unit == g.Unit && v.Table == g.Table && int(v.Register) <= int(g.To) && v.End() >= int(g.From) {
				l.add(&yaml.Node{Line: v.Line, Column: v.col}, v.key, "reads %s registers %d..%d, inside the declared gap %d..%d", v.Table, v.Register, v.End(), g.From, g.To)
			}
		}
	}
}

// checkLimits reports values longer than one read may be.
func (l *loader) checkLimits(m *Map) {
	limit := func(v *Value) {
		if !v.Table.IsBits() && v.Count() > m.Connection.MaxRegisters {
			l.add(&yaml.Node{Line: v.Line, Column: v.col}, v.key, "the value takes %d registers but modbus.max_registers is %d", v.Count(), m.Connection.MaxRegisters)
		}
	}
	for i := range m.Telemetry {
		limit(&m.Telemetry[i])
	}
	for i := range m.Properties {
		limit(&m.Properties[i])
	}
}

// ParseConnection checks an address (tcp://host:port, rtuovertcp://host:port
// or rtu:///dev/ttyUSB0?baud=9600…) and returns a Connection with the
// defaults filled in, for tools that read registers without a map.
func ParseConnection(address string) (Connection, error) {
	c := Connection{
		Address: address, UnitID: DefaultUnitID, Timeout: DefaultTimeout, Poll: DefaultPoll,
		MaxRegisters: DefaultMaxRegisters, MaxBits: DefaultMaxBits, MaxGap: DefaultMaxGap,
	}
	if err := parseAddress(&c); err != nil {
		return c, fmt.Errorf("modbus: %w", err)
	}
	return c, nil
}
