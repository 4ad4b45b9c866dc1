package mqttapi

import (
	"errors"
	"fmt"
)

var (
	// ErrReservedKey is returned when an attribute uses a key the protocol
	// reserves ("timestamp", "alerts").
	ErrReservedKey = errors.New("reserved key")
	// ErrInvalidValue is returned for an attribute value that JSON cannot carry
	// (NaN, ±Inf, a channel, a function…).
	ErrInvalidValue = errors.New("invalid value")
)

// DecodeError says why a payload could not be decoded. ID holds the request
// id when one could be read despite the error, so that the receiver can still
// answer the request with an error response.
type DecodeError struct {
	Message string // what was being decoded: "command request", "telemetry", …
	Field   string // the offending field, empty when the payload as a whole is bad
	Problem string // what is wrong with it, in words a person can act on
	ID      string // request id, when it could be recovered
	Err     error  // underlying error, if any
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("decode %s: %s", e.Message, e.Problem)
	}
	return fmt.Sprintf("decode %s: field %q: %s", e.Message, shorten(e.Field), e.Problem) // a field may be any attribute name
}

func (e *DecodeError) Unwrap() error { return e.Err }
