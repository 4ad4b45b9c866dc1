package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/driver/modbus"
)

// reportManifest prints the errors of a manifest and its warnings (fields
// outside Enapter's schema) in one list sorted by line, and returns the
// exit error when there are errors, or warnings and strict. m or me may be
// nil.
func reportManifest(w io.Writer, m *blueprint.Manifest, me *blueprint.ManifestError, strict bool) error {
	var all []blueprint.Problem
	file := ""
	if me != nil {
		all, file = append(all, me.Problems...), me.File
	}
	warnings := 0
	if m != nil {
		all, file, warnings = append(all, m.Warnings...), m.File, len(m.Warnings)
	}
	blueprint.SortProblems(all)
	for _, p := range all {
		fmt.Fprintln(w, p)
	}
	errs := len(all) - warnings
	if strict {
		errs = len(all)
	}
	if errs == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s in %s", count(errs, "problem"), file)
	switch {
	case strict && warnings > 0:
		msg += fmt.Sprintf(" (%d of them warnings, which --strict counts)", warnings)
	case warnings > 0:
		msg += fmt.Sprintf(" (and %s, which only --strict counts)", count(warnings, "warning"))
	}
	return &exitError{code: 1, err: errors.New(msg)}
}

// count says "1 problem", "2 problems".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// registerMap reports whether path is a Modbus register map (a YAML file
// with a top-level modbus key and no blueprint_spec), the file a newcomer
// easily hands to blueprint check. It then checks the map, prints its
// problems, and returns the error that says what to do with it.
func registerMap(w io.Writer, path string) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Size() > blueprint.MaxManifestSize {
		return false, nil // Load says what is wrong with it
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false, nil
	}
	var top map[string]yaml.Node
	if yaml.NewDecoder(bytes.NewReader(data)).Decode(&top) != nil {
		return false, nil
	}
	if _, ok := top["blueprint_spec"]; ok {
		return false, nil
	}
	if _, ok := top["modbus"]; !ok {
		return false, nil
	}
	state := "it is a valid map"
	if _, err := modbus.Parse(path, data); err != nil {
		var me *modbus.MapError
		if !errors.As(err, &me) {
			return true, err
		}
		fmt.Fprintln(w, me.Error())
		state = fmt.Sprintf("it has %s, listed above", count(len(me.Problems), "problem"))
	}
	return true, &exitError{code: 1, err: fmt.Errorf("%s is a Modbus register map, not a blueprint manifest (%s): run a device from it with edk run --config %s, and give --manifest path/to/manifest.yml to check it against the device's blueprint (see docs/modbus.md)", path, state, path)}
}
