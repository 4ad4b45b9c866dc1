package driver

import (
	"context"
	"fmt"
	"math"
	"time"
)

// ProgressFunc reports how a running command is getting on; the device
// runtime publishes payload as an in-progress ("log") response.
type ProgressFunc func(ctx context.Context, payload map[string]any) error

// ProgressExecutor is a Driver whose long commands report progress. The
// device runtime calls ExecuteProgress instead of Execute; Execute must
// still work (without progress) for other callers.
type ProgressExecutor interface {
	ExecuteProgress(ctx context.Context, name string, args map[string]any, progress ProgressFunc) (map[string]any, error)
}

// CommandTimeouts is a Driver whose commands may run longer (or must end
// sooner) than the device runtime's command timeout.
type CommandTimeouts interface {
	// CommandTimeout returns the timeout of one command; zero keeps the
	// runtime's.
	CommandTimeout(name string) time.Duration
}

// Number returns a required numeric argument from JSON-decoded arguments,
// or an *ArgumentError (without Command) saying what is wrong with it.
func Number(args map[string]any, name string) (float64, error) {
	v, ok := args[name]
	if !ok || v == nil {
		return 0, &ArgumentError{Argument: name, Problem: "is required"}
	}
	f, ok := v.(float64)
	if !ok {
		return 0, &ArgumentError{Argument: name, Problem: fmt.Sprintf("is %s, want a number", describe(v))}
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, &ArgumentError{Argument: name, Problem: "is not a finite number"}
	}
	return f, nil
}

// describe names a JSON-decoded value for an error message, without
// repeating a long string whole.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 32 {
			v = v[:32] + "…"
		}
		return fmt.Sprintf("the string %q", v)
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
