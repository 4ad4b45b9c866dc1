package luarun

import (
	"testing"

	"go.uber.org/goleak"
)

// Every runtime a test starts must leave no goroutine behind: its Modbus
// and HTTP connections are closed with the Lua state.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
