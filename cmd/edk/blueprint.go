package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/edk-go/edk/blueprint"
)

func runBlueprint(ctx context.Context, e *env, args []string) error {
	return dispatch(ctx, e, "blueprint", []subcommand{
		{"check", "find every problem in a manifest.yml", withoutContext(runBlueprintCheck)},
		{"docs", "print a manifest's Markdown reference", withoutContext(runBlueprintDocs)},
	}, args)
}

// runBlueprintCheck prints every problem of a manifest, one per line and
// sorted by line, warnings (fields outside Enapter's schema) among them, and
// exits 1 if there is any error (or warning, with --strict); a manifest
// without errors gets a one-line summary. A register map is told apart.
func runBlueprintCheck(e *env, args []string) error {
	fs := newFlags("blueprint check", "path/to/manifest.yml|blueprint-folder", e.stderr)
	strict := fs.Bool("strict", false, "count warnings (fields outside Enapter's schema) as problems: exit 1")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("give one manifest.yml, or the folder holding it")
	}
	if isMap, err := registerMap(e.stdout, fs.Arg(0)); isMap {
		return err
	}
	m, err := blueprint.Load(fs.Arg(0))
	var me *blueprint.ManifestError
	if err != nil && !errors.As(err, &me) {
		return err
	}
	if err := reportManifest(e.stdout, m, me, *strict); err != nil {
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
			them := "them"
			if len(me.Problems) == 1 {
				them = "it"
			}
			return fmt.Errorf("%s in %s; run 'edk blueprint check %s' to see %s", count(len(me.Problems), "problem"), me.File, fs.Arg(0), them)
		}
		return err
	}
	return m.WriteMarkdown(e.stdout)
}
