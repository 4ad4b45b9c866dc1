// Package device is the edk device runtime: it turns a Go program into an
// Enapter standalone device speaking the Device MQTT API.
//
// A Device owns one MQTT connection and the goroutines that keep it alive:
// it connects (retrying with exponential backoff and jitter), subscribes to
// its command requests on every (re)connect, runs each command on a worker
// goroutine of its own, answers every request exactly once, publishes telemetry,
// properties and logs, and on shutdown stops taking commands, lets running
// handlers finish within a grace period and disconnects cleanly.
//
// The package knows no hardware: drivers and simulators feed it values
// through SendTelemetry / SendProperties or the WithTelemetry / WithProperties
// options.
//
// # Callback contract
//
// Command handlers run on the runtime's worker goroutines, each request on
// its own worker, and may block; many run at once. The context they get is
// cancelled on timeout or shutdown, and they should return soon after: the
// error response is sent at that moment whether they return or not.
// Telemetry and properties functions each run on a publishing goroutine of
// their own, one call at a time; they should not block for longer than their
// interval. The state handler is called from the
// connection goroutine, in order, once per change; it must not block.
// None of these callbacks may call Run.
package device
