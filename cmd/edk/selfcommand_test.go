package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The hints edk prints (edk demo's watch line, edk sim modbus's next steps)
// name the edk the person actually ran, so that they paste and work.
func TestSelfCommand(t *testing.T) {
	dir := t.TempDir()
	installed := filepath.Join(dir, "bin", "edk")
	other := filepath.Join(dir, "src", "edk")
	for _, p := range []string{installed, other} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	onPath := func(string) (string, error) { return installed, nil }
	notOnPath := func(string) (string, error) { return "", errors.New("not found") }
	for _, tc := range []struct {
		arg0   string
		lookup func(string) (string, error)
		want   string
	}{
		{"/tmp/go-build123456/b001/exe/edk", onPath, "go run ./cmd/edk"},
		{"edk", onPath, "edk"},
		{installed, onPath, "edk"},    // the binary on PATH, started by its path
		{other, onPath, other},        // another build: its path, or PATH's would run
		{"./edk", notOnPath, "./edk"}, // a local build, not installed
	} {
		if got := selfCommandFor(tc.arg0, tc.lookup); got != tc.want {
			t.Errorf("selfCommandFor(%q) = %q, want %q", tc.arg0, got, tc.want)
		}
	}
}
