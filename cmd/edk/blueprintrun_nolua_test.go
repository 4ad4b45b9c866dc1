//go:build !lua

package main

import (
	"strings"
	"testing"
)

// Without -tags lua, edk run --blueprint says exactly how to get a build
// that runs Lua blueprints.
func TestRunBlueprintWithoutLua(t *testing.T) {
	code, _, stderr := runBlueprintCLI(t, "run", "--blueprint", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "apt-get install liblua5.3-dev && go build -tags lua ./cmd/edk") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}
