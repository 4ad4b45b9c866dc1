// Package lua is a small cgo binding to the reference Lua 5.3 interpreter
// (Debian's liblua5.3-dev, linked statically). It owns the C boundary and
// nothing else: creating a state, loading chunks, calling functions under
// a watchdog, moving values across, and letting Go functions be called
// from Lua. The Enapter blueprint API lives in blueprint/luarun.
//
// The package is built only with the `lua` build tag (go build -tags lua);
// without it, only Available and ErrNotBuilt exist, so the default build
// stays pure Go.
//
// Why real Lua rather than a Go reimplementation: Enapter's blueprints are
// Lua 5.3 (integers, bitwise operators, string.pack, //, goto), and a
// pure-Go 5.1 interpreter fails to parse about 40% of the marketplace.
//
// Safety rules of the boundary, kept by every function here: Lua errors
// are raised only from C (a longjmp must never cross a Go frame), so Go
// callbacks report errors by return value and the C trampoline raises
// them; Go only uses raw (metamethod-free) table access; the watchdog and
// the memory limit are enforced from a C count hook.
//
// A State is not safe for concurrent use: one goroutine at a time.
package lua
