//go:build !lua

package lua

import "errors"

// Available reports whether this binary was built with Lua (-tags lua).
const Available = false

// ErrNotBuilt says how to get a build that runs Lua blueprints.
var ErrNotBuilt = errors.New("this edk was built without Lua; to run Lua blueprints build it with: " +
	"apt-get install liblua5.3-dev && go build -tags lua ./cmd/edk")
