package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set by release builds (release/build: -ldflags "-X
// main.version=v1.2.3"); other builds fall back to what the Go toolchain
// recorded: the module version for 'go install …@v1.2.3', else "(devel)".
var version = ""

// commit and commitTime are set by release/build (-X main.commit=…) from git
// itself: the Go toolchain records no vcs.revision in a git worktree, nor
// under GOFLAGS=-buildvcs=false, and a release must say what it was built
// from. The toolchain's record, when there is one, wins.
var commit, commitTime = "", ""

// buildVersion says which edk this is: the version, and for builds from a
// git checkout the commit, its time, and whether the tree had changes.
func buildVersion() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if v == "" && ok && info.Main.Version != "" {
		v = info.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	rev, revTime := commit, commitTime
	if ok {
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if r := settings["vcs.revision"]; r != "" {
			if len(r) > 12 {
				r = r[:12]
			}
			if settings["vcs.modified"] == "true" {
				r += "+dirty"
			}
			rev, revTime = r, settings["vcs.time"]
		}
	}
	var extra []string
	if rev != "" {
		extra = append(extra, "commit "+rev)
	}
	if revTime != "" {
		extra = append(extra, revTime)
	}
	extra = append(extra, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return v + " (" + strings.Join(extra, ", ") + ")"
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags("version", "", e.stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "edk", buildVersion())
	return nil
}
