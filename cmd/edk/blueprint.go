package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/edk-go/edk/blueprint"
)

func runBlueprint(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return runBlueprintCheck(e, args[1:])
		case "docs":
			return runBlueprintDocs(e, args[1:])
		}
	}
	return usagef("want 'edk blueprint check MANIFEST' (find every problem in a manifest.yml) or 'edk blueprint docs MANIFEST' (print a Markdown reference)")
}

// runBlueprintCheck prints every problem of a manifest, one per line, and
// exits 1 if there is any; a clean manifest gets a one-line summary.
func runBlueprintCheck(e *env, args []string) error {
	fs := newFlags("blueprint check", "path/to/manifest.yml|blueprint-folder", e.stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("give one manifest.yml, or the folder holding it")
	}
	m, err := blueprint.Load(fs.Arg(0))
	var me *blueprint.ManifestError
	if errors.As(err, &me) {
		for _, p := range me.Problems {
			fmt.Fprintln(e.stdout, p)
		}
		noun := "problems"
		if len(me.Problems) == 1 {
			noun = "problem"
		}
		return &exitError{code: 1, err: fmt.Errorf("%d %s in %s", len(me.Problems), noun, me.File)}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ok: %s %q: %d properties, %d telemetry attributes, %d alerts, %d commands\n",
		m.File, m.Spec, m.DisplayName, len(m.Properties), len(m.Telemetry), len(m.Alerts), len(m.Commands))
	return checkLua(e, fs.Arg(0))
}

// runBlueprintDocs prints a Markdown reference of the device. A manifest
// with problems is refused: its reference would be wrong.
func runBlueprintDocs(e *env, args []string) error {
	fs := newFlags("blueprint docs", "path/to/manifest.yml|blueprint-folder", e.stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("give one manifest.yml, or the folder holding it")
	}
	m, err := blueprint.Load(fs.Arg(0))
	if err != nil {
		var me *blueprint.ManifestError
		if errors.As(err, &me) {
			return fmt.Errorf("%d problems in %s; run 'edk blueprint check %s' to see them", len(me.Problems), me.File, fs.Arg(0))
		}
		return err
	}
	return m.WriteMarkdown(e.stdout)
}
