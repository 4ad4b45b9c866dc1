package commconfig

import (
	"errors"
	"fmt"
)

// hint tells a user where a valid value comes from; decode errors carry it
// because the usual cause is a truncated or wrong copy-paste.
const hint = "the value should be the base64 string Enapter shows in the device's communication config"

var (
	// ErrNotSet means neither EnvConfig nor EnvLegacyConfig is set.
	ErrNotSet = errors.New("communication config not set: set " + EnvConfig +
		" to the base64 string Enapter shows in the device's communication config (" +
		EnvLegacyConfig + " is read as a fallback)")
	// ErrInvalidBase64 means the blob is not base64 in any accepted alphabet.
	ErrInvalidBase64 = errors.New("communication config is not valid base64")
	// ErrInvalidJSON means the decoded blob is not a JSON object.
	ErrInvalidJSON = errors.New("communication config is not a valid JSON object")
)

// FieldError reports a missing or bad field. Field is the name used in the
// blob ("mqtt_port", "mqtt_credentials.ca_chain"). Problem never quotes the
// field's value, so that a secret cannot leak through an error message.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("communication config: field %q: %s", e.Field, e.Problem)
}
