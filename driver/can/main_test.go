package can

import (
	"testing"

	"go.uber.org/goleak"
)

// An SLCAN bus owns a reader goroutine: Close must end it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
