package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edk-go/edk/commconfig"
)

const withUnit = `blueprint_spec: device/3.0
display_name: Heater
runtime: {type: embedded}
command_groups:
  heat: {display_name: Heat}
commands:
  set_temperature:
    display_name: Set Temperature
    group: heat
    arguments:
      temperature:
        display_name: Temperature
        type: float
        unit: Cel
`

// A field outside Enapter's schema (a unit on an argument, as in seven of
// Enapter's published manifests) is a warning with its position: exit 0;
// --strict makes it count.
func TestBlueprintCheckWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "manifest.yml")
	if err := os.WriteFile(path, []byte(withUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBlueprintCLI(t, "blueprint", "check", path)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || errOut != "" ||
		!strings.HasPrefix(lines[0], path+":14:9: warning: commands.set_temperature.arguments.temperature.unit: unknown field \"unit\"") ||
		!strings.Contains(lines[1], "ok: device/3.0") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runBlueprintCLI(t, "blueprint", "check", "--strict", path)
	if code != 1 || !strings.Contains(out, "warning: ") || strings.Contains(out, "ok:") ||
		!strings.Contains(errOut, "1 problem in "+path+" (1 of them warnings, which --strict counts)") {
		t.Errorf("--strict: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// An error beside a warning: the count names both, so that the warning
// on screen is not taken for the problem.
func TestBlueprintCheckErrorAndWarning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "manifest.yml")
	broken := strings.Replace(withUnit, "type: float", "type: floot", 1)
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBlueprintCLI(t, "blueprint", "check", path)
	if code != 1 || !strings.Contains(out, "warning: ") || !strings.Contains(out, `unknown type "floot"`) ||
		!strings.Contains(errOut, "1 problem in "+path+" (and 1 warning, which only --strict counts)") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = runBlueprintCLI(t, "blueprint", "docs", path)
	if code != 1 || !strings.Contains(errOut, "1 problem in "+path+";") {
		t.Errorf("docs: exit %d, stderr %q", code, errOut)
	}
}

// Enapter's own blueprints pass (warnings aside).
func TestBlueprintCheckMarketplace(t *testing.T) {
	dirs, _ := filepath.Glob("../../../shared/marketplace/blueprints/*/*")
	if len(dirs) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("../shared/marketplace/blueprints is required in CI")
		}
		t.Skip("no ../shared/marketplace beside the repository")
	}
	warned := 0
	for _, dir := range dirs {
		code, out, errOut := runBlueprintCLI(t, "blueprint", "check", dir)
		if code != 0 {
			t.Errorf("%s: exit %d\n%s%s", dir, code, out, errOut)
		}
		if strings.Contains(out, ": warning: ") {
			warned++
		}
	}
	if warned == 0 {
		t.Error("no marketplace manifest has a warning: the unit on arguments went unnoticed")
	}
}

// A register map handed to blueprint check is recognised: its own problems
// (with "did you mean") instead of manifest errors, and what to run.
func TestBlueprintCheckRegisterMap(t *testing.T) {
	code, out, errOut := runBlueprintCLI(t, "blueprint", "check", "../../driver/modbus/testdata/meter.yaml")
	if code != 1 || out != "" || !strings.Contains(errOut, "meter.yaml is a Modbus register map, not a blueprint manifest (it is a valid map)") ||
		!strings.Contains(errOut, "edk run --config ../../driver/modbus/testdata/meter.yaml") {
		t.Errorf("valid map: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	path := filepath.Join(t.TempDir(), "map.yaml")
	bad := "modbus: {address: tcp://127.0.0.1:502}\ntelemetry:\n  power: {regster: 1}\n  volts: {register: 2, scal: 0.1}\n"
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runBlueprintCLI(t, "blueprint", "check", path)
	if code != 1 || !strings.Contains(out, "3:11: telemetry.power.regster: unknown key; did you mean register?") ||
		!strings.Contains(out, "4:24: telemetry.volts.scal: unknown key; did you mean scale?") ||
		strings.Index(out, "regster") > strings.Index(out, "scal:") ||
		!strings.Contains(errOut, "it has 3 problems, listed above") || strings.Contains(out, "blueprint_spec") {
		t.Errorf("bad map: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// edk run --manifest takes a manifest with warnings (Enapter would) and
// logs them with their position.
func TestRunLogsManifestWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "manifest.yml")
	if err := os.WriteFile(path, []byte(withUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startCLI(t, map[string]string{commconfig.EnvConfig: mustBlob(t)}, "run", "--manifest", path)
	if !c.stderr.WaitFor(`msg="manifest: unknown field \"unit\"`, waitLimit) || !c.stderr.WaitFor("at="+path+":14:9", waitLimit) {
		t.Fatalf("no warning logged:\n%s", c.stderr)
	}
	if code := c.interrupt(t); code != 0 {
		t.Fatalf("exit %d: %s", code, c.stderr)
	}
}
