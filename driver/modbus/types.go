package modbus

import (
	"fmt"
	"time"
)

// Table is one of the four Modbus data tables.
type Table uint8

// The Modbus tables.
const (
	Holding       Table = iota // holding registers, read with function 3, written with 6 and 16
	Input                      // input registers, read with function 4
	Coil                       // coils, read with function 1, written with 5
	DiscreteInput              // discrete inputs, read with function 2
)

var tableNames = []string{"holding", "input", "coil", "discrete_input"}

func (t Table) String() string {
	if int(t) < len(tableNames) {
		return tableNames[t]
	}
	return fmt.Sprintf("table(%d)", uint8(t))
}

// IsBits reports whether the table holds single bits (coils, discrete inputs).
func (t Table) IsBits() bool { return t == Coil || t == DiscreteInput }

// ParseTable parses a table name as written in a register map.
func ParseTable(s string) (Table, error) {
	for i, n := range tableNames {
		if s == n {
			return Table(i), nil
		}
	}
	return 0, fmt.Errorf("unknown table %q; use holding, input, coil or discrete_input", s)
}

// Type is how a value is encoded in registers.
type Type uint8

// The value types.
const (
	Int16 Type = iota
	Uint16
	Int32
	Uint32
	Int64
	Uint64
	Float32
	Float64
	String // Length registers of text, two bytes per register
	Bool   // a coil, a discrete input, or one bit of a register
)

var typeNames = []string{"int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string", "bool"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType parses a type name as written in a register map. "bit", "coil"
// and "discrete_input" are accepted for bool.
func ParseType(s string) (Type, error) {
	switch s {
	case "bit", "coil", "discrete_input", "boolean":
		return Bool, nil
	}
	for i, n := range typeNames {
		if s == n {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("unknown type %q; use int16, uint16, int32, uint32, int64, uint64, float32, float64, string or bool", s)
}

// Words is the number of 16-bit registers a value of the type takes (0 for
// String, whose length is given per value).
func (t Type) Words() int {
	switch t {
	case Int16, Uint16, Bool:
		return 1
	case Int32, Uint32, Float32:
		return 2
	case Int64, Uint64, Float64:
		return 4
	}
	return 0
}

func (t Type) isInteger() bool { return t <= Uint64 }
func (t Type) isNumber() bool  { return t <= Float64 }

// Order is a byte order (within a register) or a word order (of the
// registers of a multi-register value).
type Order uint8

// The orders. For words, Big means the high word comes first (at the lower
// register address).
const (
	Big Order = iota
	Little
)

func (o Order) String() string {
	if o == Little {
		return "little"
	}
	return "big"
}

// Value is one readable value of the register map: a telemetry attribute, a
// property, or the register bit behind an alert.
type Value struct {
	Name      string
	Unit      uint8 // Modbus unit id (slave address)
	Table     Table
	Register  uint16 // first register (or coil) address, 0-based as on the wire
	Type      Type
	Length    uint16 // registers of a String value
	Bit       int    // bit 0..15 of the register for a Bool in a register table; -1 otherwise
	ByteOrder Order
	WordOrder Order
	Scale     float64 // value = raw*Scale + Offset; never 0
	Offset    float64
	// Map turns raw integers into enum strings. A raw value missing from
	// the map leaves the attribute out of the reading.
	Map map[int64]string
	// Unavailable lists raw values that mean "not available" (0x8000 for an
	// int16, 0xFFFFFFFF for a uint32…): the attribute is left out.
	Unavailable []uint64
	Poll        time.Duration // telemetry only: the value's poll group
	Line        int           // line in the map file, for messages
	col         int
	key         string // dotted key in the map file, for messages
}

// Count is the number of registers (or bits, in a bit table) the value reads.
func (v *Value) Count() uint16 {
	if v.Table.IsBits() {
		return 1
	}
	if v.Type == String {
		return v.Length
	}
	return uint16(v.Type.Words())
}

// End is the last register address the value covers.
func (v *Value) End() int { return int(v.Register) + int(v.Count()) - 1 }

// ArgType is the type of a command argument.
type ArgType uint8

// Argument types, as in an Enapter manifest.
const (
	ArgInteger ArgType = iota
	ArgFloat
	ArgBoolean
)

func (a ArgType) String() string {
	return [...]string{"integer", "float", "boolean"}[a]
}

// Argument is one declared argument of a command.
type Argument struct {
	Name     string
	Type     ArgType
	Min, Max *float64 // inclusive bounds, if set
	Required bool     // true unless the map sets required: false or a default
	Default  any      // used when the argument is absent (float64 or bool)
}

// Write is one register write of a command.
type Write struct {
	Unit      uint8
	Table     Table // Holding or Coil
	Register  uint16
	Type      Type
	ByteOrder Order
	WordOrder Order
	Scale     float64 // raw = (value - Offset) / Scale
	Offset    float64
	Argument  string // the argument written, or "" for Const
	Const     any    // float64 or bool, when Argument is ""
	Line      int
}

// Count is the number of registers (or coils) written.
func (w *Write) Count() uint16 {
	if w.Table == Coil {
		return 1
	}
	return uint16(w.Type.Words())
}

// Command is a named command: its arguments and the writes it makes, in order.
type Command struct {
	Name        string
	Description string
	Arguments   []Argument
	Writes      []Write
	Line        int // of its name in the map file, for messages
}

// Alert is a named alert: active while its expression holds, or while its
// register bit (or coil, or discrete input) is set.
type Alert struct {
	Name string
	When string // the expression, when the alert has one
	expr expr
	// Source is the bit read for a register alert (nil for an expression).
	Source *Value
	Line   int // of its name in the map file, for messages
}

// Gap is a range of registers of one table that a merged read must never
// cover: registers a device refuses to read, or a boundary between blocks.
type Gap struct {
	Unit     uint8
	Table    Table
	From, To uint16 // inclusive
}

// Connection says how to reach the device.
type Connection struct {
	// Address is tcp://host:port, rtuovertcp://host:port, or
	// rtu:///dev/ttyUSB0?baud=9600&parity=N&stop_bits=1&data_bits=8.
	Address  string
	UnitID   uint8         // default unit id (DefaultUnitID)
	Timeout  time.Duration // per request (DefaultTimeout)
	Poll     time.Duration // default telemetry poll interval (DefaultPoll)
	Baud     uint          // rtu: serial speed
	DataBits uint          // rtu
	Parity   uint          // rtu: 0 none, 1 even, 2 odd
	StopBits uint          // rtu
	// MaxRegisters caps the registers of one read (at most 125).
	MaxRegisters uint16
	// MaxBits caps the coils or discrete inputs of one read (at most 2000).
	MaxBits uint16
	// MaxGap is how many unmapped registers a merged read may span
	// (DefaultMaxGap: only neighbouring values are merged).
	MaxGap    uint16
	ByteOrder Order // default byte order of values
	WordOrder Order // default word order of values
}

// Defaults of a register map.
const (
	DefaultUnitID       = 1
	DefaultTimeout      = time.Second
	DefaultPoll         = time.Second
	DefaultMaxRegisters = 125
	DefaultMaxBits      = 2000
	DefaultMaxGap       = 0
	DefaultBaud         = 19200
)

// Map is a loaded and validated register map.
type Map struct {
	Connection Connection
	Telemetry  []Value   // sorted by name
	Properties []Value   // sorted by name
	Commands   []Command // sorted by name
	Alerts     []Alert   // sorted by name
	Gaps       []Gap
}
