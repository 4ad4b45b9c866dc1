package device

import (
	"errors"
	"fmt"

	"github.com/edk-go/edk/driver"
)

var (
	// ErrNotConnected is returned by the Send methods while the device is
	// not connected to its broker. The message was not sent.
	ErrNotConnected = errors.New("device is not connected")
	// ErrStopped is returned by the Send methods after Run has returned.
	ErrStopped = errors.New("device is stopped")
	// ErrAlreadyRunning is returned by a second call to Run.
	ErrAlreadyRunning = errors.New("device is already running")
)

// CommandError is an error a handler returns to control the error
// response: its Message becomes payload.message and Payload, if set, is
// merged into the payload.
type CommandError struct {
	Message string
	Payload map[string]any
}

func (e *CommandError) Error() string { return e.Message }

// Errorf builds a *CommandError; handlers return it to answer "error" with a
// message meant for the person who sent the command.
func Errorf(format string, args ...any) error {
	return &CommandError{Message: fmt.Sprintf(format, args...)}
}

// ArgumentError says which command argument is wrong and why; it is
// driver.ArgumentError (the device's helpers leave Command empty), and
// wraps driver.ErrBadArgument.
type ArgumentError = driver.ArgumentError
