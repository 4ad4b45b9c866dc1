package modbus

import (
	"errors"
	"fmt"

	"github.com/edk-go/edk/driver"
	mb "github.com/simonvetter/modbus"
)

// Errors of the driver.
var (
	// ErrNotConnected: the device is not connected and the next attempt
	// to connect is not due yet (see Options.Backoff).
	ErrNotConnected = errors.New("modbus: not connected")
	// ErrClosed: the driver was closed.
	ErrClosed = errors.New("modbus: driver closed")
	// ErrUnknownCommand: Execute got a command the map does not declare.
	// It is driver.ErrUnknownCommand.
	ErrUnknownCommand = driver.ErrUnknownCommand
	// ErrBadArgument is wrapped by every *ArgumentError. It is
	// driver.ErrBadArgument.
	ErrBadArgument = driver.ErrBadArgument
)

// RequestError is a failed Modbus request.
type RequestError struct {
	Op       string // "read" or "write"
	Unit     uint8
	Table    Table
	Register uint16
	Count    uint16
	Err      error
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("modbus: %s %s %d..%d (unit %d): %v%s", e.Op, e.Table, e.Register, int(e.Register)+int(e.Count)-1, e.Unit, e.Err, hint(e.Err))
}

func (e *RequestError) Unwrap() error { return e.Err }

// Exception reports whether the device answered with a Modbus exception
// (illegal address, device busy…): the link works, the request does not.
func (e *RequestError) Exception() bool { return IsException(e.Err) }

// exceptions are the Modbus exception answers by their code on the wire.
var exceptions = []struct {
	code byte
	err  error
}{
	{1, mb.ErrIllegalFunction}, {2, mb.ErrIllegalDataAddress}, {3, mb.ErrIllegalDataValue},
	{4, mb.ErrServerDeviceFailure}, {5, mb.ErrAcknowledge}, {6, mb.ErrServerDeviceBusy},
	{8, mb.ErrMemoryParityError}, {10, mb.ErrGWPathUnavailable}, {11, mb.ErrGWTargetFailedToRespond},
}

// ExceptionCode returns the Modbus exception code (1 illegal function, 2
// illegal data address, …) when err is (or wraps) an exception answer.
func ExceptionCode(err error) (byte, bool) {
	for _, x := range exceptions {
		if errors.Is(err, x.err) {
			return x.code, true
		}
	}
	return 0, false
}

// IsException reports whether err is (or wraps) a Modbus exception answer.
func IsException(err error) bool {
	_, ok := ExceptionCode(err)
	return ok
}

func hint(err error) string {
	switch {
	case errors.Is(err, mb.ErrIllegalDataAddress):
		return " (the device has no such register: check the address, the table and whether the map numbers registers from 0 or 1, or declare a gap)"
	case errors.Is(err, mb.ErrIllegalFunction):
		return " (the device does not support this table or function)"
	case errors.Is(err, mb.ErrRequestTimedOut):
		return " (no answer: check the unit id, wiring and serial settings, or raise modbus.timeout)"
	case errors.Is(err, mb.ErrIllegalDataValue):
		return " (the device refused the value or the request size: try a smaller modbus.max_registers)"
	}
	return ""
}
