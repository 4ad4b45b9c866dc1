//go:build lua

package lua

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// maxDepth bounds nesting when converting tables, against runaway data.
const maxDepth = 64

// formatFloat formats a float as Lua 5.3's tostring does ("%.14g", and
// "5.0" for integral floats).
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		if math.Signbit(f) {
			return "-nan"
		}
		return "nan"
	}
	str := strconv.FormatFloat(f, 'g', 14, 64)
	if strings.ContainsAny(str, "e") {
		// %g in C writes at least two exponent digits: 1e+20
		mant, exp, _ := strings.Cut(str, "e")
		sign := exp[0]
		digits := exp[1:]
		if len(digits) < 2 {
			digits = "0" + digits
		}
		return mant + "e" + string(sign) + digits
	}
	if !strings.ContainsAny(str, ".n") {
		str += ".0"
	}
	return str
}

// ToValue converts the element at idx to Go: nil, bool, int64, float64,
// string, []any (a table whose keys are exactly 1..n, and the empty
// table) or map[string]any (other tables; number keys are written as
// Lua's tostring would). Functions, userdata and threads are an error.
func (s *State) ToValue(idx int) (any, error) {
	return s.toValue(s.abs(idx), 0, map[uintptr]bool{})
}

func (s *State) toValue(idx, depth int, seen map[uintptr]bool) (any, error) {
	switch t := s.Type(idx); t {
	case TypeNil, TypeNone:
		return nil, nil
	case TypeBoolean:
		return s.ToBool(idx), nil
	case TypeNumber:
		if s.IsInteger(idx) {
			return s.ToInteger(idx), nil
		}
		return s.ToNumber(idx), nil
	case TypeString:
		return s.ToString(idx), nil
	case TypeTable:
		if depth >= maxDepth {
			return nil, fmt.Errorf("table nested deeper than %d levels", maxDepth)
		}
		p := s.ToPointer(idx)
		if seen[p] {
			return nil, fmt.Errorf("table contains itself")
		}
		seen[p] = true
		defer delete(seen, p)
		return s.tableValue(idx, depth, seen)
	default:
		return nil, fmt.Errorf("cannot convert a %s", t)
	}
}

func (s *State) tableValue(idx, depth int, seen map[uintptr]bool) (any, error) {
	m := map[string]any{}
	var ints map[int64]any
	count, maxInt := 0, int64(0)
	s.PushNil()
	for s.Next(idx) {
		count++
		v, err := s.toValue(s.Top(), depth+1, seen)
		if err != nil {
			s.Pop(2)
			return nil, wrapKey(s, -2, err)
		}
		switch s.Type(-2) {
		case TypeString:
			m[s.ToString(-2)] = v
		case TypeNumber:
			if s.IsInteger(-2) {
				k := s.ToInteger(-2)
				if ints == nil {
					ints = map[int64]any{}
				}
				ints[k] = v
				if k > maxInt {
					maxInt = k
				}
			} else {
				m[s.ToString(-2)] = v
			}
		case TypeBoolean:
			m[fmt.Sprint(s.ToBool(-2))] = v
		default:
			s.Pop(2)
			return nil, fmt.Errorf("cannot convert a table with %s keys", s.Type(-2))
		}
		s.Pop(1)
	}
	if len(m) == 0 && int64(len(ints)) == maxInt {
		arr := make([]any, maxInt)
		for k, v := range ints {
			arr[k-1] = v
		}
		return arr, nil
	}
	for k, v := range ints {
		m[strconv.FormatInt(k, 10)] = v
	}
	return m, nil
}

func wrapKey(s *State, idx int, err error) error {
	switch s.Type(idx) {
	case TypeString, TypeNumber:
		return fmt.Errorf("%s: %w", s.ToString(idx), err)
	}
	return err
}

// Push pushes a Go value: nil, bool, integers, floats, string, []byte,
// json.Number, []any, []string, []uint16, []bool, map[string]any,
// map[string]string, map[string][]string, Func.
func (s *State) Push(v any) error { return s.push(v, 0) }

func (s *State) push(v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("value nested deeper than %d levels", maxDepth)
	}
	switch x := v.(type) {
	case nil:
		s.PushNil()
	case bool:
		s.PushBool(x)
	case int:
		s.PushInteger(int64(x))
	case int64:
		s.PushInteger(x)
	case int32:
		s.PushInteger(int64(x))
	case uint16:
		s.PushInteger(int64(x))
	case uint32:
		s.PushInteger(int64(x))
	case float64:
		s.PushNumber(x)
	case float32:
		s.PushNumber(float64(x))
	case string:
		s.PushString(x)
	case []byte:
		s.PushString(string(x))
	case json.Number:
		if i, err := x.Int64(); err == nil {
			s.PushInteger(i)
		} else if f, err := x.Float64(); err == nil {
			s.PushNumber(f)
		} else {
			return fmt.Errorf("number %s out of range", x)
		}
	case Func:
		s.PushFunc(x)
	case []any:
		s.NewTable()
		for i, e := range x {
			if err := s.push(e, depth+1); err != nil {
				s.Pop(1)
				return err
			}
			s.RawSetIndex(-2, int64(i+1))
		}
	case []string:
		s.NewTable()
		for i, e := range x {
			s.PushString(e)
			s.RawSetIndex(-2, int64(i+1))
		}
	case []uint16:
		s.NewTable()
		for i, e := range x {
			s.PushInteger(int64(e))
			s.RawSetIndex(-2, int64(i+1))
		}
	case []bool:
		s.NewTable()
		for i, e := range x {
			s.PushBool(e)
			s.RawSetIndex(-2, int64(i+1))
		}
	case map[string]any:
		s.NewTable()
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic table construction
		for _, k := range keys {
			if x[k] == nil {
				continue
			}
			if err := s.push(x[k], depth+1); err != nil {
				s.Pop(1)
				return fmt.Errorf("%s: %w", k, err)
			}
			s.RawSetField(-2, k)
		}
	case map[string]string:
		s.NewTable()
		for k, e := range x {
			s.PushString(e)
			s.RawSetField(-2, k)
		}
	default:
		return fmt.Errorf("cannot pass a %T to Lua", v)
	}
	return nil
}
