package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set by release builds (.release/build: -ldflags "-X
// main.version=v1.2.3"); other builds fall back to what the Go toolchain
// recorded: the module version for 'go install …@v1.2.3', else "(devel)".
var version = ""

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
	var extra []string
	if ok {
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if settings["vcs.modified"] == "true" {
				rev += "+dirty"
			}
			extra = append(extra, "commit "+rev)
		}
		if t := settings["vcs.time"]; t != "" {
			extra = append(extra, t)
		}
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
