package blueprint

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
)

// CheckCommand checks a command request against the manifest: the command
// must be declared, required arguments present, every declared argument of
// its type (a number for an integer argument must be whole), in its enum
// and within min and max. Arguments the manifest does not declare are
// passed through unchecked.
//
// It returns the arguments with the manifest's defaults filled in for
// absent (or null) ones: a new map when a default was added, args itself
// otherwise; args is never modified. The error is an *ArgumentError about
// the first failing argument, in manifest order.
func (m *Manifest) CheckCommand(name string, args map[string]any) (map[string]any, error) {
	c := m.commands[name]
	if c == nil {
		msg := fmt.Sprintf("unknown command %q: the device's manifest does not declare it", name)
		if s := suggest(name, m.commandNames()); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return nil, &ArgumentError{Command: name, Rule: RuleUnknownCommand, Message: msg}
	}
	fill := false
	for _, a := range c.Arguments {
		v, ok := args[a.Name]
		if !ok || v == nil {
			switch {
			case a.Default != nil:
				fill = true
			case a.Required:
				return nil, argErr(c, a, RuleRequired, "is required")
			}
			continue
		}
		if err := c.checkArgument(a, v); err != nil {
			return nil, err
		}
	}
	if !fill {
		return args, nil
	}
	out := make(map[string]any, len(args)+c.defaults)
	for k, v := range args {
		out[k] = v
	}
	for _, a := range c.Arguments {
		if a.Default != nil && out[a.Name] == nil {
			out[a.Name] = a.Default
		}
	}
	return out, nil
}

func argErr(c *Command, a *Argument, rule Rule, format string, args ...any) *ArgumentError {
	problem := fmt.Sprintf(format, args...)
	return &ArgumentError{
		Command:  c.Name,
		Argument: a.Name,
		Rule:     rule,
		Message:  fmt.Sprintf("argument %q of %s ", a.Name, c.Name) + problem,
		problem:  problem,
	}
}

func (c *Command) checkArgument(a *Argument, v any) error {
	if a.Type != "" && !conforms(a.Type, v) {
		if a.Type == TypeInteger {
			if f, ok := toFloat(v); ok && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return argErr(c, a, RuleType, "must be a whole number (integer), not %s", fmtNum(f))
			}
		}
		return argErr(c, a, RuleType, "must be %s, not %s", article(a.Type), describeValue(v))
	}
	if a.Enum != nil && !a.Enum.contains(v) {
		return argErr(c, a, RuleEnum, "must be one of %s, not %s", a.Enum.list(), describeValue(v))
	}
	if a.Min != nil || a.Max != nil {
		if f, ok := toFloat(v); ok {
			if a.Min != nil && f < *a.Min {
				return argErr(c, a, RuleMin, "must be at least %s (min), not %s", fmtNum(*a.Min), fmtNum(f))
			}
			if a.Max != nil && f > *a.Max {
				return argErr(c, a, RuleMax, "must be at most %s (max), not %s", fmtNum(*a.Max), fmtNum(f))
			}
		}
	}
	return nil
}

// CheckTelemetry checks a telemetry message: every attribute declared, of
// its type and in its enum; every active alert (and every name in an
// alerts-typed attribute) declared. The reserved keys timestamp and alerts
// in values are skipped, as are nil values (no reading). It returns nil when
// all is well, without allocating; violations are sorted by attribute.
func (m *Manifest) CheckTelemetry(values map[string]any, alerts []string) []Violation {
	out := m.checkValues(nil, "telemetry", m.telemetry, values)
	for _, name := range alerts {
		if m.alerts[name] == nil {
			out = append(out, m.undeclaredAlert(name, name, ""))
		}
	}
	sortViolations(out)
	return out
}

// CheckProperties checks a properties message as CheckTelemetry does.
func (m *Manifest) CheckProperties(values map[string]any) []Violation {
	out := m.checkValues(nil, "property", m.properties, values)
	sortViolations(out)
	return out
}

func (m *Manifest) checkValues(out []Violation, kind string, decl map[string]*Attribute, values map[string]any) []Violation {
	for k, v := range values {
		if k == "timestamp" || k == "alerts" {
			continue
		}
		a := decl[k]
		if a == nil {
			msg := fmt.Sprintf("%s %q is not declared in the manifest", kind, k)
			if s := suggest(k, attrNames(decl)); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += ": declare it, or stop sending it"
			}
			out = append(out, Violation{Attribute: k, Problem: Undeclared, Message: msg})
			continue
		}
		if v == nil || a.Type == "" {
			continue
		}
		if !conforms(a.Type, v) {
			out = append(out, Violation{Attribute: k, Problem: WrongType,
				Message: fmt.Sprintf("%s %q is %s, but the manifest declares %s", kind, k, describeValue(v), a.Type)})
			continue
		}
		if a.Type == TypeAlerts {
			out = m.checkAlertList(out, k, v)
			continue
		}
		if a.Enum != nil && !a.Enum.contains(v) {
			out = append(out, Violation{Attribute: k, Problem: NotInEnum,
				Message: fmt.Sprintf("%s %q is %s, not one of its enum values %s", kind, k, describeValue(v), a.Enum.list())})
		}
	}
	return out
}

func (m *Manifest) checkAlertList(out []Violation, attr string, v any) []Violation {
	switch v := v.(type) {
	case []string:
		for _, name := range v {
			if m.alerts[name] == nil {
				out = append(out, m.undeclaredAlert(attr, name, attr))
			}
		}
	case []any:
		for _, it := range v {
			if name, _ := it.(string); m.alerts[name] == nil {
				out = append(out, m.undeclaredAlert(attr, name, attr))
			}
		}
	}
	return out
}

func (m *Manifest) undeclaredAlert(attr, name, in string) Violation {
	where := "active alert"
	if in != "" {
		where = fmt.Sprintf("alert in telemetry %q", in)
	}
	return Violation{Attribute: attr, Problem: UndeclaredAlert,
		Message: fmt.Sprintf("%s %q is not declared under the manifest's alerts: declare it with a severity and display_name", where, name)}
}

func sortViolations(vs []Violation) {
	if len(vs) > 1 {
		sort.Slice(vs, func(i, j int) bool {
			if vs[i].Attribute != vs[j].Attribute {
				return vs[i].Attribute < vs[j].Attribute
			}
			return vs[i].Message < vs[j].Message
		})
	}
}

func attrNames(m map[string]*Attribute) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (m *Manifest) commandNames() []string {
	out := make([]string, 0, len(m.Commands))
	for _, c := range m.Commands {
		out = append(out, c.Name)
	}
	return out
}

// conforms reports whether v is a value of type t. It does not allocate for
// the types a device normally sends.
func conforms(t Type, v any) bool {
	switch t {
	case TypeJSON:
		return true
	case TypeString:
		if _, ok := v.(string); ok {
			return true
		}
		return kindOf(v) == reflect.String
	case TypeBoolean:
		if _, ok := v.(bool); ok {
			return true
		}
		return kindOf(v) == reflect.Bool
	case TypeFloat:
		f, ok := toFloat(v)
		return ok && !math.IsNaN(f) && !math.IsInf(f, 0)
	case TypeInteger:
		switch v.(type) {
		case int, int64, int32, int16, int8, uint, uint64, uint32, uint16, uint8:
			return true
		}
		f, ok := toFloat(v)
		return ok && f == math.Trunc(f) && !math.IsInf(f, 0)
	case TypeArrayOfStrings, TypeAlerts:
		switch v := v.(type) {
		case []string:
			return true
		case []any:
			for _, it := range v {
				if _, ok := it.(string); !ok {
					return false
				}
			}
			return true
		}
		return false
	}
	return true // unknown types were reported when loading
}

func kindOf(v any) reflect.Kind {
	if v == nil {
		return reflect.Invalid
	}
	return reflect.TypeOf(v).Kind()
}

// toFloat converts any Go number (and json.Number) to float64.
func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case float32:
		return float64(v), true
	case int32:
		return float64(v), true
	case uint32:
		return float64(v), true
	case uint64:
		return float64(v), true
	case uint:
		return float64(v), true
	case int16:
		return float64(v), true
	case uint16:
		return float64(v), true
	case int8:
		return float64(v), true
	case uint8:
		return float64(v), true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	}
	return 0, false
}

// contains reports whether v is one of the enum's values.
func (e *Enum) contains(v any) bool {
	if s, ok := v.(string); ok {
		_, found := e.strs[s]
		return found
	}
	if b, ok := v.(bool); ok {
		for _, ev := range e.Values {
			if ev.Value == b {
				return true
			}
		}
		return false
	}
	if f, ok := toFloat(v); ok {
		for _, n := range e.nums {
			if n == f {
				return true
			}
		}
		return false
	}
	if kindOf(v) == reflect.String {
		_, found := e.strs[reflect.ValueOf(v).String()]
		return found
	}
	return false
}

// typeMismatch says how v (a string, float64 or bool from YAML) fails type
// t, or "" when it fits.
func typeMismatch(t Type, v any) string {
	if conforms(t, v) {
		return ""
	}
	if _, ok := v.(float64); ok && t == TypeInteger {
		return "is not a whole number"
	}
	switch v.(type) {
	case string:
		return "is a string"
	case float64:
		return "is a number"
	case bool:
		return "is a boolean"
	}
	return "is of another type"
}

func article(t Type) string {
	switch t {
	case TypeInteger:
		return "an integer"
	case TypeFloat:
		return "a float (a number)"
	case TypeArrayOfStrings:
		return "an array_of_strings (a list of strings)"
	case TypeAlerts:
		return "a list of alert names"
	}
	return "a " + string(t)
}

// describeValue names a value's JSON type and, for short scalars, the value.
func describeValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if len(v) > 32 {
			v = v[:32] + "…"
		}
		return "the string " + strconv.Quote(v)
	case bool:
		return "the boolean " + strconv.FormatBool(v)
	case []any, []string:
		return "a list"
	case map[string]any:
		return "an object"
	}
	if f, ok := toFloat(v); ok {
		return "the number " + fmtNum(f)
	}
	if kindOf(v) == reflect.String {
		return describeValue(reflect.ValueOf(v).String())
	}
	return fmt.Sprintf("a %T", v)
}

func formatValue(v any) string {
	if f, ok := v.(float64); ok {
		return fmtNum(f)
	}
	return fmt.Sprint(v)
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
