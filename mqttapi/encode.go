package mqttapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// MarshalJSON encodes telemetry; see AppendJSON.
func (t Telemetry) MarshalJSON() ([]byte, error) { return t.AppendJSON(nil) }

// AppendJSON appends the telemetry as a JSON object to dst. Keys are sorted
// so that equal messages encode to equal bytes. A zero Timestamp is replaced
// by the current time. Attributes may not use a reserved key.
func (t Telemetry) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"timestamp":`...)
	dst = strconv.AppendInt(dst, stampOrNow(t.Timestamp), 10)
	if t.Alerts.known {
		dst = append(dst, `,"alerts":[`...)
		for i, name := range t.Alerts.names {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendString(dst, name); err != nil {
				return nil, fmt.Errorf("encode telemetry: alert %d: %w", i, err)
			}
		}
		dst = append(dst, ']')
	}
	dst, err := appendValues(dst, t.Values)
	if err != nil {
		return nil, fmt.Errorf("encode telemetry: %w", err)
	}
	return append(dst, '}'), nil
}

// MarshalJSON encodes properties; see AppendJSON.
func (p Properties) MarshalJSON() ([]byte, error) { return p.AppendJSON(nil) }

// AppendJSON appends the properties as a JSON object to dst.
func (p Properties) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"timestamp":`...)
	dst = strconv.AppendInt(dst, stampOrNow(p.Timestamp), 10)
	dst, err := appendValues(dst, p.Values)
	if err != nil {
		return nil, fmt.Errorf("encode properties: %w", err)
	}
	return append(dst, '}'), nil
}

// MarshalJSON encodes a log message, checking its severity.
func (l Log) MarshalJSON() ([]byte, error) {
	if !l.Severity.valid() {
		return nil, fmt.Errorf("encode log: severity %q: want debug, info, warning or error", l.Severity)
	}
	type plain Log
	p := plain(l)
	p.Timestamp = stampOrNow(l.Timestamp)
	return json.Marshal(p)
}

// MarshalJSON encodes a response, checking its state and payload.
func (r CommandResponse) MarshalJSON() ([]byte, error) {
	if r.ID == "" {
		return nil, fmt.Errorf("encode command response: id is empty")
	}
	if !r.State.valid() {
		return nil, fmt.Errorf("encode command response %q: state %q: want completed, error or log", r.ID, r.State)
	}
	dst := append([]byte(`{"id":`), nil...)
	dst, err := appendString(dst, r.ID)
	if err != nil {
		return nil, fmt.Errorf("encode command response: id: %w", err)
	}
	dst = append(dst, `,"state":"`...)
	dst = append(dst, r.State...)
	dst = append(dst, `","payload":`...)
	payload := r.Payload
	if len(payload) == 0 {
		payload = emptyObject
	} else if !json.Valid(payload) || !utf8.Valid(payload) || firstByte(payload) != '{' {
		return nil, fmt.Errorf("encode command response %q: payload must be a JSON object", r.ID)
	}
	dst = append(dst, payload...)
	return append(dst, '}'), nil
}

// MarshalJSON encodes a request, checking id, name and arguments.
func (c CommandRequest) MarshalJSON() ([]byte, error) {
	if c.ID == "" || c.Name == "" {
		return nil, fmt.Errorf("encode command request: id and name must not be empty")
	}
	type plain CommandRequest
	if len(c.Arguments) > 0 && (!json.Valid(c.Arguments) || firstByte(c.Arguments) != '{') {
		return nil, fmt.Errorf("encode command request %q: arguments must be a JSON object", c.ID)
	}
	return json.Marshal(plain(c))
}

func stampOrNow(ts int64) int64 {
	if ts == 0 {
		return now()
	}
	return ts
}

func appendValues(dst []byte, values map[string]any) ([]byte, error) {
	for _, k := range sortedKeys(values) {
		if k == KeyTimestamp || k == KeyAlerts {
			return nil, fmt.Errorf("attribute %q: %w: attributes may not be named %q or %q", k, ErrReservedKey, KeyTimestamp, KeyAlerts)
		}
		if k == "" {
			return nil, fmt.Errorf("attribute with an empty name")
		}
		dst = append(dst, ',')
		var err error
		if dst, err = appendString(dst, k); err != nil {
			return nil, fmt.Errorf("attribute name %q: %w", k, err)
		}
		dst = append(dst, ':')
		if dst, err = appendValue(dst, values[k]); err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
	}
	return dst, nil
}

// appendValue has fast paths for the scalar types devices send every second
// and falls back to encoding/json for the rest.
func appendValue(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case string:
		return appendString(dst, v)
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint64:
		return strconv.AppendUint(dst, v, 10), nil
	case float64:
		return appendFloat(dst, v, 64)
	case float32:
		return appendFloat(dst, float64(v), 32)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return append(dst, b...), nil
}

func appendFloat(dst []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: %v cannot be sent as JSON", ErrInvalidValue, f)
	}
	// Same format choice as encoding/json: plain notation for ordinary magnitudes.
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// Also like encoding/json: write e-09 as e-9.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 is an error rather
// than being replaced, so no value is silently changed on the way out.
func appendString(dst []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("%w: string is not valid UTF-8", ErrInvalidValue)
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), nil
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

func jsonKind(b []byte) string {
	switch firstByte(b) {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case 0:
		return "nothing"
	}
	return "a number"
}
