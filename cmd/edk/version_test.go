package main

import (
	"strings"
	"testing"
)

// A release build's stamped commit shows in the version when the toolchain
// recorded none (test binaries, like builds in a git worktree, have none).
func TestBuildVersionStamped(t *testing.T) {
	defer func(v, c, ct string) { version, commit, commitTime = v, c, ct }(version, commit, commitTime)
	version, commit, commitTime = "v1.2.3", "0123456789ab", "2026-12-03T12:00:00Z"
	got := buildVersion()
	if !strings.HasPrefix(got, "v1.2.3 (commit 0123456789ab, 2026-12-03T12:00:00Z, go") {
		t.Fatalf("buildVersion() = %q", got)
	}
	version, commit, commitTime = "", "", ""
	if got := buildVersion(); strings.Contains(got, "commit") {
		t.Fatalf("unstamped buildVersion() = %q, want no commit", got)
	}
}
