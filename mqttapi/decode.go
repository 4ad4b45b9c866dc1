package mqttapi

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// object is a JSON object whose fields are decoded one at a time, so that
// an error can name the field at fault.
type object map[string]json.RawMessage

func decodeObject(msg string, b []byte) (object, *DecodeError) {
	if !utf8.Valid(b) {
		return nil, &DecodeError{Message: msg, Problem: "payload is not valid UTF-8"}
	}
	if firstByte(b) != '{' {
		if !json.Valid(b) {
			return nil, &DecodeError{Message: msg, Problem: "payload is not JSON"}
		}
		return nil, &DecodeError{Message: msg, Problem: "payload is " + jsonKind(b) + ", want a JSON object"}
	}
	var o object
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, &DecodeError{Message: msg, Problem: "payload is not JSON: " + err.Error(), Err: err}
	}
	return o, nil
}

func (o object) has(key string) bool {
	v, ok := o[key]
	return ok && string(v) != "null"
}

func (o object) string(msg, key string, required bool) (string, *DecodeError) {
	raw, ok := o[key]
	if !ok || string(raw) == "null" {
		if required {
			return "", &DecodeError{Message: msg, Field: key, Problem: "missing"}
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &DecodeError{Message: msg, Field: key, Problem: "is " + jsonKind(raw) + ", want a string"}
	}
	if required && s == "" {
		return "", &DecodeError{Message: msg, Field: key, Problem: "is empty"}
	}
	return s, nil
}

func (o object) timestamp(msg string) (int64, *DecodeError) {
	raw, ok := o[KeyTimestamp]
	if !ok || string(raw) == "null" {
		return 0, &DecodeError{Message: msg, Field: KeyTimestamp, Problem: "missing"}
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, &DecodeError{Message: msg, Field: KeyTimestamp, Problem: "is " + jsonKind(raw) + ", want an integer number of seconds"}
	}
	if f != math.Trunc(f) || f < 0 || f > 1<<53 {
		return 0, &DecodeError{Message: msg, Field: KeyTimestamp, Problem: "is not a whole, non-negative number of seconds"}
	}
	return int64(f), nil
}

func (o object) values(msg string, skip ...string) (map[string]any, *DecodeError) {
	values := make(map[string]any, len(o))
next:
	for k, raw := range o {
		for _, s := range skip {
			if k == s {
				continue next
			}
		}
		if k == "" {
			return nil, &DecodeError{Message: msg, Field: k, Problem: "attribute name is empty"}
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			// The error quotes the offending number in full, however long: cut it.
			return nil, &DecodeError{Message: msg, Field: k, Problem: "cannot be decoded: " + quote(err.Error()), Err: err}
		}
		values[k] = v
	}
	return values, nil
}

// DecodeTelemetry decodes a telemetry payload.
func DecodeTelemetry(b []byte) (Telemetry, error) {
	const msg = "telemetry"
	o, derr := decodeObject(msg, b)
	if derr != nil {
		return Telemetry{}, derr
	}
	ts, derr := o.timestamp(msg)
	if derr != nil {
		return Telemetry{}, derr
	}
	var alerts Alerts
	if o.has(KeyAlerts) {
		var names []string
		if err := json.Unmarshal(o[KeyAlerts], &names); err != nil {
			return Telemetry{}, &DecodeError{Message: msg, Field: KeyAlerts, Problem: "want a list of alert names (strings)"}
		}
		alerts = ActiveAlerts(names...)
	}
	values, derr := o.values(msg, KeyTimestamp, KeyAlerts)
	if derr != nil {
		return Telemetry{}, derr
	}
	return Telemetry{Timestamp: ts, Alerts: alerts, Values: values}, nil
}

// DecodeProperties decodes a properties payload (v1/properties or v1/register).
func DecodeProperties(b []byte) (Properties, error) {
	const msg = "properties"
	o, derr := decodeObject(msg, b)
	if derr != nil {
		return Properties{}, derr
	}
	ts, derr := o.timestamp(msg)
	if derr != nil {
		return Properties{}, derr
	}
	if o.has(KeyAlerts) {
		return Properties{}, &DecodeError{Message: msg, Field: KeyAlerts, Problem: "is reserved for telemetry"}
	}
	values, derr := o.values(msg, KeyTimestamp, KeyAlerts)
	if derr != nil {
		return Properties{}, derr
	}
	return Properties{Timestamp: ts, Values: values}, nil
}

// DecodeLog decodes a v3/logs payload.
func DecodeLog(b []byte) (Log, error) {
	const msg = "log"
	o, derr := decodeObject(msg, b)
	if derr != nil {
		return Log{}, derr
	}
	ts, derr := o.timestamp(msg)
	if derr != nil {
		return Log{}, derr
	}
	text, derr := o.string(msg, "message", false)
	if derr != nil {
		return Log{}, derr
	}
	sev, derr := o.string(msg, "severity", true)
	if derr != nil {
		return Log{}, derr
	}
	if !Severity(sev).valid() {
		return Log{}, &DecodeError{Message: msg, Field: "severity", Problem: "is " + quote(sev) + ", want debug, info, warning or error"}
	}
	l := Log{Timestamp: ts, Message: text, Severity: Severity(sev)}
	if o.has("persist") {
		if err := json.Unmarshal(o["persist"], &l.Persist); err != nil {
			return Log{}, &DecodeError{Message: msg, Field: "persist", Problem: "want true or false"}
		}
	}
	return l, nil
}

// DecodeCommandRequest decodes a command request. When the request is bad but
// its id could be read, the *DecodeError carries that id so that the device
// can still answer with an error response.
func DecodeCommandRequest(b []byte) (CommandRequest, error) {
	if req, ok := decodeCommandRequestFast(b); ok {
		return req, nil
	}
	return decodeCommandRequestSlow(b)
}

// decodeCommandRequestSlow decodes field by field, to say exactly what is
// wrong; it is the reference the fast decoder is fuzzed against.
func decodeCommandRequestSlow(b []byte) (CommandRequest, error) {
	const msg = "command request"
	if !utf8.Valid(b) {
		derr := &DecodeError{Message: msg, Problem: "payload is not valid UTF-8"}
		// The id may still be intact; answer on it only if it survived unchanged.
		// Probe with a map, not a struct: struct fields match keys regardless
		// of case, and the id must be read exactly as the valid path reads it.
		var probe object
		var id string
		if json.Unmarshal(b, &probe) == nil && json.Unmarshal(probe["id"], &id) == nil && id != "" && !strings.ContainsRune(id, utf8.RuneError) {
			derr.ID = id
		}
		return CommandRequest{}, derr
	}
	o, derr := decodeObject(msg, b)
	if derr != nil {
		return CommandRequest{}, derr
	}
	id, derr := o.string(msg, "id", true)
	if derr != nil {
		return CommandRequest{}, derr
	}
	req := CommandRequest{ID: id}
	withID := func(d *DecodeError) (CommandRequest, error) {
		d.ID = id
		return CommandRequest{}, d
	}
	if req.Name, derr = o.string(msg, "name", true); derr != nil {
		return withID(derr)
	}
	if o.has("arguments") {
		args := o["arguments"]
		if firstByte(args) != '{' {
			return withID(&DecodeError{Message: msg, Field: "arguments", Problem: "is " + jsonKind(args) + ", want a JSON object"})
		}
		req.Arguments = args
	}
	return req, nil
}

// DecodeCommandResponse decodes a command response.
func DecodeCommandResponse(b []byte) (CommandResponse, error) {
	const msg = "command response"
	o, derr := decodeObject(msg, b)
	if derr != nil {
		return CommandResponse{}, derr
	}
	id, derr := o.string(msg, "id", true)
	if derr != nil {
		return CommandResponse{}, derr
	}
	state, derr := o.string(msg, "state", true)
	if derr != nil {
		derr.ID = id
		return CommandResponse{}, derr
	}
	if !ResponseState(state).valid() {
		return CommandResponse{}, &DecodeError{Message: msg, Field: "state", ID: id, Problem: "is " + quote(state) + ", want completed, error or log"}
	}
	r := CommandResponse{ID: id, State: ResponseState(state), Payload: slices.Clone(emptyObject)} // the caller owns it
	if o.has("payload") {
		p := o["payload"]
		if firstByte(p) != '{' {
			return CommandResponse{}, &DecodeError{Message: msg, Field: "payload", ID: id, Problem: "is " + jsonKind(p) + ", want a JSON object"}
		}
		r.Payload = p
	}
	return r, nil
}

// quote quotes a value for an error message, cut short so that a huge
// payload cannot make a huge log line.
func quote(s string) string {
	b, _ := appendString(nil, shorten(s)) // s is valid UTF-8: the payload was checked first
	return string(b)
}

// shorten cuts s to at most 64 bytes, on a rune boundary, marking the cut.
func shorten(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
