// Package modbus is the Modbus driver: a YAML register map (Load, Parse)
// turned into telemetry, properties, alerts and command writes against a
// device reached by Modbus TCP, RTU over a serial line, or RTU over TCP,
// through github.com/simonvetter/modbus.
//
// The map format is documented in docs/modbus.md. Loading checks the whole
// map before anything is dialled and reports every problem with its line,
// column and key (*MapError). New makes a Driver, which implements
// driver.Driver: it merges neighbouring registers into as few requests as
// the limits allow (Plan shows them, Stats counts them), reconnects with
// backoff, and turns a failed read into the communication_error alert and an
// error, never a panic. The in-process simulator is package modbussim.
package modbus
