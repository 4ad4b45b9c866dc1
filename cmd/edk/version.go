package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

func runVersion(_ context.Context, e *env, _ []string) error {
	version := "(devel)"
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		version = info.Main.Version
	}
	fmt.Fprintln(e.stdout, "edk", version)
	return nil
}
