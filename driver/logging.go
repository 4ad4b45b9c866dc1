package driver

// FailureLogger is a Driver that logs its own read failures (when they
// start, a summary while they last, and the recovery), as driver/modbus does
// when given a logger. The device runtime then logs a failed Telemetry or
// Properties only at debug level: one outage of the hardware is one story
// in the log, told by the driver that knows its cause, not two.
type FailureLogger interface {
	Driver
	// LogsFailures reports whether the driver logs its read failures.
	LogsFailures() bool
}
