package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edk-go/edk/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files of the blueprint tests")

// runBlueprintCLI runs edk with args and returns the exit code, stdout and
// stderr.
func runBlueprintCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	stdout, stderr := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	e := &env{stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }, readFile: os.ReadFile}
	code := run(context.Background(), e, args)
	return code, stdout.String(), stderr.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "blueprint", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/edk -run Blueprint -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update if intended):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

const bpData = "../../blueprint/testdata/"

func TestBlueprintCheckBroken(t *testing.T) {
	for _, name := range []string{"broken_v3", "broken_v1", "broken_v1_json", "not_yaml", "not_mapping"} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runBlueprintCLI(t, "blueprint", "check", bpData+name+".yml")
			if code != 1 {
				t.Errorf("exit %d, want 1; stderr: %s", code, errOut)
			}
			if !strings.Contains(errOut, "problem") {
				t.Errorf("stderr %q does not count the problems", errOut)
			}
			golden(t, "check_"+name, strings.ReplaceAll(out, bpData, ""))
		})
	}
}

func TestBlueprintCheckClean(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"inverter_v3.yml", `device/3.0 "SimInverter 10K": 4 properties, 8 telemetry attributes, 3 alerts, 5 commands`},
		{"fuel_cell_v1.yml", `device/1.0 "Acme FC-800 Fuel Cell": 3 properties, 7 telemetry attributes, 4 alerts, 4 commands`},
		{"relay_v3.yml", `device/3.0 "Six-Channel Relay": 1 properties, 2 telemetry attributes, 1 alerts, 2 commands`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			code, out, errOut := runBlueprintCLI(t, "blueprint", "check", bpData+tc.file)
			if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, tc.want) || errOut != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, tc.want)
			}
		})
	}
}

func TestBlueprintCheckFolder(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(bpData + "relay_v3.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runBlueprintCLI(t, "blueprint", "check", dir); code != 0 || !strings.Contains(out, "manifest.yml: ok") {
		t.Errorf("folder: exit %d, %q", code, out)
	}
}

func TestBlueprintUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no subcommand", []string{"blueprint"}, 2, "want a subcommand: 'edk blueprint check'"},
		{"no file", []string{"blueprint", "check"}, 2, "give one manifest.yml"},
		{"two files", []string{"blueprint", "docs", "a", "b"}, 2, "give one manifest.yml"},
		{"missing file", []string{"blueprint", "check", "no/such/manifest.yml"}, 1, "no such file"},
		{"docs of broken", []string{"blueprint", "docs", bpData + "broken_v3.yml"}, 1, "run 'edk blueprint check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runBlueprintCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.err)
			}
		})
	}
}

func TestBlueprintDocs(t *testing.T) {
	for _, name := range []string{"inverter_v3", "fuel_cell_v1"} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runBlueprintCLI(t, "blueprint", "docs", bpData+name+".yml")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, "docs_"+name, out)
		})
	}
}
