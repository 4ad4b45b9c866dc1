package driver

import (
	"errors"
	"fmt"
)

// The error vocabulary of commands, shared by every driver, the device
// runtime and the blueprint checks, so that one errors.Is or errors.As
// answers whichever of them rejected a command.
var (
	// ErrUnknownCommand is wrapped by the error of Execute for a command
	// the driver does not know.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrBadArgument is wrapped by every *ArgumentError.
	ErrBadArgument = errors.New("bad argument")
)

// ArgumentError says which argument of a command is wrong and why.
type ArgumentError struct {
	Command  string // "" where the code that checks does not know it (a handler's argument helpers)
	Argument string
	Problem  string
}

func (e *ArgumentError) Error() string {
	if e.Command == "" {
		return fmt.Sprintf("argument %q: %s", e.Argument, e.Problem)
	}
	return fmt.Sprintf("command %q: argument %q: %s", e.Command, e.Argument, e.Problem)
}

// Unwrap lets errors.Is(err, ErrBadArgument) hold.
func (e *ArgumentError) Unwrap() error { return ErrBadArgument }
