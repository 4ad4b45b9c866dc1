package driver_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/edk-go/edk/driver"
)

func TestArgumentError(t *testing.T) {
	for _, tc := range []struct {
		err  *driver.ArgumentError
		want string
	}{
		{&driver.ArgumentError{Command: "set_power", Argument: "power", Problem: "is required"}, `command "set_power": argument "power": is required`},
		{&driver.ArgumentError{Argument: "power", Problem: "is required"}, `argument "power": is required`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		wrapped := fmt.Errorf("execute: %w", tc.err)
		if !errors.Is(wrapped, driver.ErrBadArgument) {
			t.Errorf("%v does not match ErrBadArgument", wrapped)
		}
		var ae *driver.ArgumentError
		if !errors.As(wrapped, &ae) || ae != tc.err {
			t.Errorf("errors.As did not find the *ArgumentError in %v", wrapped)
		}
	}
}
