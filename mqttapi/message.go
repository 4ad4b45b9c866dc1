package mqttapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Reserved keys that attributes may not use.
const (
	KeyTimestamp = "timestamp"
	KeyAlerts    = "alerts"
)

// Alerts is the alert state reported with telemetry. The protocol tells
// "no alerts" (an empty list) apart from "unknown" (no list at all), so this
// type does too: the zero value is unknown and is not sent.
type Alerts struct {
	names []string
	known bool
}

// NoAlerts reports that the device knows it has no active alerts.
func NoAlerts() Alerts { return Alerts{known: true, names: []string{}} }

// ActiveAlerts reports the given alerts as active; with no names it is
// the same as NoAlerts.
func ActiveAlerts(names ...string) Alerts {
	return Alerts{known: true, names: append([]string{}, names...)}
}

// UnknownAlerts reports that the alert state is not known (the zero value).
func UnknownAlerts() Alerts { return Alerts{} }

// Known reports whether the alert state is known.
func (a Alerts) Known() bool { return a.known }

// Names returns the active alerts; nil when unknown.
func (a Alerts) Names() []string { return a.names }

// Telemetry is one telemetry message.
type Telemetry struct {
	Timestamp int64          // Unix seconds; 0 means "now" when encoding
	Alerts    Alerts         // zero value: not sent
	Values    map[string]any // attribute name → JSON-encodable value
}

// Properties is one properties message.
type Properties struct {
	Timestamp int64
	Values    map[string]any
}

// Severity is the level of a device log message.
type Severity string

const (
	SeverityDebug   Severity = "debug"
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

func (s Severity) valid() bool {
	switch s {
	case SeverityDebug, SeverityInfo, SeverityWarning, SeverityError:
		return true
	}
	return false
}

// Log is one log message published on v3/logs.
type Log struct {
	Timestamp int64    `json:"timestamp"`
	Message   string   `json:"message"`
	Severity  Severity `json:"severity"`
	Persist   bool     `json:"persist"`
}

// CommandRequest asks the device to run a command.
type CommandRequest struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments,omitempty"` // a JSON object, or empty
}

// ResponseState is the state a command response reports.
type ResponseState string

const (
	StateCompleted ResponseState = "completed"
	StateError     ResponseState = "error"
	StateLog       ResponseState = "log" // progress, sent before the final response
)

// Final reports whether s ends the command.
func (s ResponseState) Final() bool { return s == StateCompleted || s == StateError }

func (s ResponseState) valid() bool { return s == StateCompleted || s == StateError || s == StateLog }

// CommandResponse answers a CommandRequest.
type CommandResponse struct {
	ID      string          `json:"id"`
	State   ResponseState   `json:"state"`
	Payload json.RawMessage `json:"payload"` // a JSON object; "{}" when empty
}

// NewCommandResponse builds a response with payload marshalled to JSON; a
// nil payload becomes {}.
func NewCommandResponse(id string, state ResponseState, payload any) (CommandResponse, error) {
	r := CommandResponse{ID: id, State: state, Payload: slices.Clone(emptyObject)} // the caller owns it
	if payload == nil {
		return r, nil
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return CommandResponse{}, fmt.Errorf("encode payload of response %q: %w", id, err)
	}
	if len(b) == 0 || b[0] != '{' {
		if string(b) == "null" {
			return r, nil
		}
		return CommandResponse{}, fmt.Errorf("encode payload of response %q: payload must be a JSON object, got %s", id, jsonKind(b))
	}
	r.Payload = b
	return r, nil
}

// ErrorResponse builds an error response whose payload is {"message": msg}.
func ErrorResponse(id, msg string) CommandResponse {
	b, _ := json.Marshal(map[string]string{"message": msg}) // a string map always marshals
	return CommandResponse{ID: id, State: StateError, Payload: b}
}

// Message returns payload.message when the payload has one.
func (r CommandResponse) Message() string {
	var p struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(r.Payload, &p)
	return p.Message
}

var emptyObject = json.RawMessage("{}")

func now() int64 { return time.Now().Unix() }

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
