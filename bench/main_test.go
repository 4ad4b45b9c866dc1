package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no benchmark leaves a goroutine behind (a paho
// client, a device's Run, a process waiter).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
