// Package driver holds the small, protocol-agnostic contract between a
// hardware driver (Modbus, CAN, HTTP, SNMP, a simulator…) and the code that
// publishes its data: the device runtime, or a command-line tool.
//
// A driver turns the hardware's registers, frames or endpoints into named
// values, and named commands with arguments into writes. It knows nothing
// about MQTT. The runtime calls Telemetry on its telemetry interval,
// Properties on its properties interval, and Execute for every command
// request; it publishes what comes back.
//
// Callback contract: the runtime may call Execute concurrently with
// Telemetry and Properties (command handlers run in their own goroutines), so
// every implementation must be safe for concurrent use. No method may panic on
// a hardware failure: it returns an error, and Telemetry also reports the
// failure as the CommunicationError alert.
package driver

import "context"

// CommunicationError is the alert a driver reports while it cannot read the
// hardware (no connection, timeouts, exception answers).
const CommunicationError = "communication_error"

// Reading is one sample of telemetry.
type Reading struct {
	// Values maps attribute names to values: bool, int64, uint64, float64
	// or string. An attribute that could not be read is absent.
	Values map[string]any
	// Alerts lists the active alerts, sorted. Empty (non-nil) means none.
	Alerts []string
}

// Driver is what the device runtime needs from a hardware driver.
type Driver interface {
	// Telemetry reads the values that are due and returns the latest
	// sample of every telemetry attribute with the active alerts. A failed
	// read returns the partial sample, the CommunicationError alert and an
	// error the caller logs.
	Telemetry(ctx context.Context) (Reading, error)
	// Properties reads every property.
	Properties(ctx context.Context) (map[string]any, error)
	// Commands lists the commands Execute knows, sorted.
	Commands() []string
	// Execute runs one command with its JSON-decoded arguments and returns
	// the response payload. An unknown command returns an error wrapping
	// ErrUnknownCommand; a bad argument returns an *ArgumentError (which
	// wraps ErrBadArgument).
	Execute(ctx context.Context, name string, args map[string]any) (map[string]any, error)
	// Close releases the connection. It is safe to call more than once.
	Close() error
}
