package modbus

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edk-go/edk/driver"
)

// ordered returns the value's bytes in big-endian order (most significant
// first), undoing the value's byte and word order.
func ordered(words []uint16, byteOrder, wordOrder Order) []byte {
	b := make([]byte, 2*len(words))
	for i, w := range words {
		j := i
		if wordOrder == Little {
			j = len(words) - 1 - i
		}
		if byteOrder == Little {
			w = w<<8 | w>>8
		}
		binary.BigEndian.PutUint16(b[2*j:], w)
	}
	return b
}

// Decode turns the registers of one value into its published value: bool,
// int64, uint64, float64 or string. ok is false when the value is not
// available (a raw value listed in Unavailable, a raw value missing from
// Map, NaN or ±Inf).
func (v *Value) Decode(words []uint16) (out any, ok bool, err error) {
	if v.Type == Bool && v.Table.IsBits() && len(words) == 1 {
		return words[0] != 0, true, nil
	}
	if v.Type == Bool {
		if len(words) != 1 || v.Bit < 0 {
			return nil, false, fmt.Errorf("%s: bool from a register needs 1 register and a bit", v.Name)
		}
		return words[0]>>uint(v.Bit)&1 == 1, true, nil
	}
	if len(words) != int(v.Count()) {
		return nil, false, fmt.Errorf("%s: want %d registers, got %d", v.Name, v.Count(), len(words))
	}
	if v.Type == String {
		b := ordered(words, v.ByteOrder, Big)
		s := strings.TrimRight(string(b), "\x00 ")
		if i := strings.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		if !utf8.ValidString(s) {
			s = strings.ToValidUTF8(s, "\uFFFD")
		}
		return s, true, nil
	}
	b := ordered(words, v.ByteOrder, v.WordOrder)
	var raw uint64 // the bits, for Unavailable
	var i int64
	var u uint64
	var f float64
	kind := 'i'
	switch v.Type {
	case Int16:
		raw = uint64(binary.BigEndian.Uint16(b))
		i = int64(int16(raw))
	case Uint16:
		raw = uint64(binary.BigEndian.Uint16(b))
		u, kind = raw, 'u'
	case Int32:
		raw = uint64(binary.BigEndian.Uint32(b))
		i = int64(int32(raw))
	case Uint32:
		raw = uint64(binary.BigEndian.Uint32(b))
		u, kind = raw, 'u'
	case Int64:
		raw = binary.BigEndian.Uint64(b)
		i = int64(raw)
	case Uint64:
		raw = binary.BigEndian.Uint64(b)
		u, kind = raw, 'u'
	case Float32:
		raw = uint64(binary.BigEndian.Uint32(b))
		f, kind = float64(math.Float32frombits(uint32(raw))), 'f'
	case Float64:
		raw = binary.BigEndian.Uint64(b)
		f, kind = math.Float64frombits(raw), 'f'
	}
	if slices.Contains(v.Unavailable, raw) {
		return nil, false, nil
	}
	if v.Map != nil {
		key := i
		if kind == 'u' {
			if u > math.MaxInt64 {
				return nil, false, nil
			}
			key = int64(u)
		}
		s, found := v.Map[key]
		return s, found, nil
	}
	plain := v.Scale == 1 && v.Offset == 0
	switch kind {
	case 'i':
		if plain {
			return i, true, nil
		}
		f = float64(i)
	case 'u':
		if plain {
			return u, true, nil
		}
		f = float64(u)
	}
	f = f*v.Scale + v.Offset
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, false, nil
	}
	if kind == 'i' || kind == 'u' {
		f = roundToScale(f, v.Scale, v.Offset)
	}
	return f, true, nil
}

// roundToScale removes the binary noise of raw*scale (23042*0.01 is
// 230.42000000000002 in float64) by rounding to the decimals that scale
// and offset can produce, so that 230.42 is published as 230.42.
func roundToScale(f, scale, offset float64) float64 {
	decimals := max(decimalsOf(scale), decimalsOf(offset))
	if decimals == 0 || decimals > 12 {
		return f
	}
	p := math.Pow10(decimals)
	return math.Round(f*p) / p
}

// decimalsOf returns how many decimals x needs in its shortest form.
func decimalsOf(x float64) int {
	s := strconv.FormatFloat(math.Abs(x), 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

// encode turns a number into the registers of the write, applying the
// inverse of scale and offset and checking that the raw value fits the type.
func (w *Write) encode(value float64) ([]uint16, error) {
	raw := (value - w.Offset) / w.Scale
	if math.IsNaN(raw) || math.IsInf(raw, 0) {
		return nil, fmt.Errorf("%g does not give a register value", value)
	}
	b := make([]byte, 8)
	n := w.Type.Words() * 2
	if w.Type.isInteger() {
		r := math.Round(raw)
		lo, hi := intRange(w.Type)
		if r < lo || r > hi {
			return nil, fmt.Errorf("%g gives raw value %g, outside the %s range %g..%g", value, r, w.Type, lo, hi)
		}
		switch w.Type {
		case Int16:
			binary.BigEndian.PutUint16(b, uint16(int16(r)))
		case Uint16:
			binary.BigEndian.PutUint16(b, uint16(r))
		case Int32:
			binary.BigEndian.PutUint32(b, uint32(int32(r)))
		case Uint32:
			binary.BigEndian.PutUint32(b, uint32(r))
		case Int64:
			binary.BigEndian.PutUint64(b, uint64(int64(r)))
		case Uint64:
			binary.BigEndian.PutUint64(b, uint64(r))
		}
	} else {
		switch w.Type {
		case Float32:
			if math.Abs(raw) > math.MaxFloat32 {
				return nil, fmt.Errorf("%g is too large for a float32", value)
			}
			binary.BigEndian.PutUint32(b, math.Float32bits(float32(raw)))
		case Float64:
			binary.BigEndian.PutUint64(b, math.Float64bits(raw))
		default:
			return nil, fmt.Errorf("cannot write a number as %s", w.Type)
		}
	}
	return fromOrdered(b[:n], w.ByteOrder, w.WordOrder), nil
}

// fromOrdered is the inverse of ordered.
func fromOrdered(b []byte, byteOrder, wordOrder Order) []uint16 {
	words := make([]uint16, len(b)/2)
	for i := range words {
		w := binary.BigEndian.Uint16(b[2*i:])
		if byteOrder == Little {
			w = w<<8 | w>>8
		}
		j := i
		if wordOrder == Little {
			j = len(words) - 1 - i
		}
		words[j] = w
	}
	return words
}

// intRange is the range of an integer type as float64. The upper bounds of
// the 64-bit types are the largest float64 values below 2^63 and 2^64, so
// a converted value never overflows.
func intRange(t Type) (lo, hi float64) {
	switch t {
	case Int16:
		return math.MinInt16, math.MaxInt16
	case Uint16:
		return 0, math.MaxUint16
	case Int32:
		return math.MinInt32, math.MaxInt32
	case Uint32:
		return 0, math.MaxUint32
	case Int64:
		return math.MinInt64, math.Nextafter(math.MaxInt64, 0)
	case Uint64:
		return 0, math.Nextafter(math.MaxUint64, 0)
	}
	return 0, 0
}

// ArgumentError says what is wrong with one argument of a command; it is
// driver.ArgumentError, and wraps ErrBadArgument.
type ArgumentError = driver.ArgumentError

// check tests a number against the argument's type and bounds.
func (a *Argument) check(f float64) error {
	if a.Type == ArgInteger && f != math.Trunc(f) {
		return fmt.Errorf("want an integer, got %g", f)
	}
	if a.Min != nil && f < *a.Min {
		return fmt.Errorf("%g is below the minimum %g", f, *a.Min)
	}
	if a.Max != nil && f > *a.Max {
		return fmt.Errorf("%g is above the maximum %g", f, *a.Max)
	}
	return nil
}

// value extracts and checks the argument from a command's arguments.
func (a *Argument) value(args map[string]any) (any, error) {
	raw, ok := args[a.Name]
	if !ok || raw == nil {
		if a.Default != nil {
			return a.Default, nil
		}
		if a.Required {
			return nil, fmt.Errorf("missing; it is required")
		}
		return nil, nil
	}
	if a.Type == ArgBoolean {
		b, ok := raw.(bool)
		if !ok {
			return nil, fmt.Errorf("want true or false, got %T", raw)
		}
		return b, nil
	}
	var f float64
	switch x := raw.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint64:
		f = float64(x)
	case interface{ Float64() (float64, error) }: // json.Number
		var err error
		if f, err = x.Float64(); err != nil {
			return nil, fmt.Errorf("want a number, got %q", fmt.Sprint(x))
		}
	default:
		return nil, fmt.Errorf("want a number, got %T", raw)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("want a finite number")
	}
	if err := a.check(f); err != nil {
		return nil, err
	}
	return f, nil
}
