package mdns

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// defaultTestTimeout is long enough for a loaded CI machine to answer on
// loopback; tests that expect no answer set a shorter one.
const defaultTestTimeout = 5 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
