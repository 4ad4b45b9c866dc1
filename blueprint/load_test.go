package blueprint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustLoad(t testing.TB, name string) *Manifest {
	t.Helper()
	m, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return m
}

func TestLoadValidManifests(t *testing.T) {
	for _, tc := range []struct {
		file                                   string
		spec                                   Spec
		props, tele, alerts, cmds, groups, cfg int
	}{
		{"inverter_v3.yml", SpecV3, 4, 8, 3, 5, 2, 1},
		{"relay_v3.yml", SpecV3, 1, 2, 1, 2, 1, 0},
		{"fuel_cell_v1.yml", SpecV1, 3, 7, 4, 4, 2, 0},
		{"minimal_v3.yml", SpecV3, 0, 0, 0, 0, 0, 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m := mustLoad(t, tc.file)
			got := []int{len(m.Properties), len(m.Telemetry), len(m.Alerts), len(m.Commands), len(m.CommandGroups), len(m.Configuration)}
			want := []int{tc.props, tc.tele, tc.alerts, tc.cmds, tc.groups, tc.cfg}
			if m.Spec != tc.spec || fmtInts(got) != fmtInts(want) {
				t.Errorf("spec %s counts %v, want %s %v", m.Spec, got, tc.spec, want)
			}
		})
	}
}

func fmtInts(xs []int) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(fmtNum(float64(x)))
	}
	return b.String()
}

func TestLoadFolder(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/relay_v3.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil || m.DisplayName != "Six-Channel Relay" {
		t.Fatalf("Load(folder) = %v, %v", m, err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no manifest.yml") {
		t.Errorf("empty folder: %v", err)
	}
}

func TestLoadedDetails(t *testing.T) {
	m := mustLoad(t, "inverter_v3.yml")
	// The anchor and the merge key (<<) both apply.
	set := m.Command("set_power").Argument("power")
	ramp := m.Command("ramp_power").Argument("power")
	if set.Type != TypeFloat || !set.Required || *set.Max != 10000 || ramp.Type != TypeFloat || *ramp.Max != 10000 {
		t.Errorf("templated arguments: %+v %+v", set, ramp)
	}
	if ramp.Description != "Power to reach at the end of the ramp." {
		t.Errorf("explicit key must win over merged one: %q", ramp.Description)
	}
	st := m.TelemetryAttribute("status")
	if len(st.Enum.Values) != 3 || st.Enum.Values[1].Color != "green" || st.Enum.Values[0].DisplayName != "Standby" {
		t.Errorf("enum map: %+v", st.Enum.Values)
	}
	if gm := m.TelemetryAttribute("grid_mode"); gm.Enum.Values[1].Value != 1.0 {
		t.Errorf("integer enum keys: %+v", gm.Enum.Values)
	}
	if a := m.Alert("communication_failed"); a.Severity != "error" || a.GracePeriod != "15s" || len(a.Troubleshooting) != 2 {
		t.Errorf("alert: %+v", a)
	}
	if p := m.Property("serial_number"); p.AccessLevel != "installer" || p.Pos.Line == 0 {
		t.Errorf("property: %+v", p)
	}
	if m.Runtime == nil || m.Runtime.Type != "embedded" {
		t.Errorf("runtime: %+v", m.Runtime)
	}
	fc := mustLoad(t, "fuel_cell_v1.yml")
	if d := fc.Command("write_configuration").Argument("save_0x400").Default; d != false {
		t.Errorf(`boolean default "false" must load as false, got %#v`, d)
	}
}

// Each broken manifest must report exactly these problems (path and the
// start of the message); the golden tests of cmd/edk fix the full text.
func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // "line:col path: message prefix"
	}{
		{"missing spec", "display_name: X\n", []string{"1:1 blueprint_spec: missing blueprint_spec"}},
		{"unknown spec", "blueprint_spec: device/9.0\ndisplay_name: X\n", []string{"1:17 blueprint_spec: unknown blueprint_spec"}},
		{"missing display name", "blueprint_spec: device/3.0\nruntime: {type: lua}\n", []string{"1:1 display_name: missing display_name"}},
		{"missing runtime v3", "blueprint_spec: device/3.0\ndisplay_name: X\n", []string{"1:1 runtime: missing runtime"}},
		{"empty", "", []string{"1:1 : the manifest is empty"}},
		{"unknown type", v3 + "properties:\n  a:\n    display_name: A\n    type: double\n", []string{"7:11 properties.a.type: unknown type \"double\""}},
		{"missing type", v3 + "properties:\n  a:\n    display_name: A\n", []string{"5:3 properties.a.type: missing type"}},
		{"alerts type on property", v3 + "properties:\n  a:\n    display_name: A\n    type: alerts\n", []string{"7:11 properties.a.type: type alerts is only for telemetry"}},
		{"undeclared group", v3 + "commands:\n  c:\n    display_name: C\n    group: g\n", []string{"7:12 commands.c.group: group \"g\" is not declared"}},
		{"enum wrong type", v3 + "telemetry:\n  a:\n    display_name: A\n    type: integer\n    enum: [1, x]\n", []string{"8:15 telemetry.a.enum: enum value \"x\" is a string"}},
		{"enum not list", v3 + "telemetry:\n  a:\n    display_name: A\n    type: string\n    enum: x\n", []string{"8:11 telemetry.a.enum: enum must be a list or a map"}},
		{"empty enum", v3 + "telemetry:\n  a:\n    display_name: A\n    type: string\n    enum: []\n", []string{"8:11 telemetry.a.enum: enum is empty"}},
		{"min above max", v3 + cmdArg("type: float\n      min: 5\n      max: 1\n"), []string{"15:12 commands.c.arguments.x.min: min 5 is greater than max 1"}},
		{"min not number", v3 + cmdArg("type: float\n      min: low\n"), []string{"15:12 commands.c.arguments.x.min: min must be a number"}},
		{"default wrong type", v3 + cmdArg("type: integer\n      default: abc\n"), []string{"15:16 commands.c.arguments.x.default: default \"abc\" is a string"}},
		{"default below min", v3 + cmdArg("type: integer\n      min: 1\n      default: 0\n"), []string{"16:16 commands.c.arguments.x.default: default 0 is below min 1"}},
		{"default not in enum", v3 + cmdArg("type: string\n      enum: [a]\n      default: b\n"), []string{"16:16 commands.c.arguments.x.default: default \"b\" is not one of the enum values"}},
		{"default bool string ok", v3 + cmdArg("type: boolean\n      default: \"true\"\n"), nil},
		{"default bool wrong", v3 + cmdArg("type: boolean\n      default: yes please\n"), []string{"15:16 commands.c.arguments.x.default: default \"yes please\" is a string"}},
		{"duplicate name", v3 + "properties:\n  a: {display_name: A, type: string}\n  a: {display_name: B, type: string}\n", []string{"6:3 properties.a: \"a\" is declared twice"}},
		{"duplicate key in entity", v3 + "properties:\n  a:\n    display_name: A\n    type: string\n    type: integer\n", []string{"8:5 properties.a.type: \"type\" is declared twice"}},
		{"dot keys are free", v3 + ".anything: {x: 1}\nproperties:\n  .tmpl: {x: 1}\n", nil},
		{"bad severity", v3 + "alerts:\n  a: {display_name: A, severity: fatal}\n", []string{"5:34 alerts.a.severity: unknown severity \"fatal\""}},
		{"bad access level", v3 + "properties:\n  a: {display_name: A, type: string, access_level: admin}\n", []string{"5:52 properties.a.access_level: unknown access level"}},
		{"bad alert name", v3 + "alerts:\n  \"a b\": {display_name: A, severity: info}\n", []string{"5:3 alerts.a b: invalid name"}},
		{"reserved telemetry", v3 + "telemetry:\n  timestamp: {display_name: T, type: integer}\n", []string{"5:3 telemetry.timestamp: \"timestamp\" is a reserved key"}},
		{"bucket without parameters", v3 + "configuration:\n  c: {display_name: C}\n", []string{"5:3 configuration.c.parameters: missing parameters"}},
		{"confirmation without title", v3 + "command_groups: {g: {display_name: G}}\ncommands:\n  c:\n    display_name: C\n    group: g\n    confirmation: {severity: info}\n", []string{"9:5 commands.c.confirmation.title: missing title"}},
		{"section not mapping", v3 + "commands: [a, b]\n", []string{"4:11 commands: must be a mapping of fields, not a list"}},
		{"merge of scalar", v3 + "properties:\n  a:\n    <<: 5\n    display_name: A\n    type: string\n", []string{"6:9 properties.a: a merge key (<<) must name a mapping"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.yml", []byte(tc.yaml))
			var got []string
			var me *ManifestError
			if errors.As(err, &me) {
				for _, p := range me.Problems {
					if p.File != "m.yml" || p.Line < 1 || p.Column < 1 || p.Message == "" {
						t.Errorf("bad problem %+v", p)
					}
					got = append(got, fmtInts([]int{p.Line})+":"+fmtInts([]int{p.Column})+" "+p.Path+": "+p.Message)
				}
				if !errors.Is(err, ErrInvalidManifest) {
					t.Error("errors.Is(err, ErrInvalidManifest) is false")
				}
			} else if err != nil {
				t.Fatalf("err = %v, want a *ManifestError", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("problem %d:\n got %s\nwant %s…", i, got[i], tc.want[i])
				}
			}
		})
	}
}

const v3 = "blueprint_spec: device/3.0\ndisplay_name: X\nruntime: {type: embedded}\n"

// cmdArg is a command c in group g with one argument x whose remaining
// fields are given (indented by 6); the fields start on line 14.
func cmdArg(fields string) string {
	return "command_groups:\n  g:\n    display_name: G\ncommands:\n  c:\n    display_name: C\n    group: g\n    arguments:\n     x:\n      display_name: X\n      " + fields
}

func TestProblemString(t *testing.T) {
	p := Problem{File: "m.yml", Line: 3, Column: 5, Path: "a.b", Message: "bad", Hint: "do this"}
	if got := p.String(); got != "m.yml:3:5: a.b: bad (do this)" {
		t.Errorf("String() = %q", got)
	}
}

// Fields outside Enapter's schema are warnings, with their position and the
// closest known field when there is one: Enapter's platform takes them (its
// own manifests carry a unit on command arguments), so they never make the
// manifest fail; real errors beside them still do, and a report of both
// sorted by line interleaves them.
func TestWarnings(t *testing.T) {
	yml := v3 + "telemetery: {}\n" + cmdArg("type: float\n      unit: W\n      requried: true\n      min: 5\n      max: 1\n")
	m, err := Parse("m.yml", []byte(yml))
	var me *ManifestError
	if !errors.As(err, &me) || len(me.Problems) != 1 || me.Problems[0].Warning {
		t.Fatalf("err = %v, want the one real error (min above max)", err)
	}
	if m == nil || len(m.Warnings) != 3 {
		t.Fatalf("warnings: %+v", m)
	}
	want := []string{
		`m.yml:4:1: warning: telemetery: unknown field "telemetery" in the manifest: remove it or fix its name (did you mean telemetry?)`,
		`m.yml:16:7: warning: commands.c.arguments.x.unit: unknown field "unit" in commands.c.arguments.x: remove it or fix its name (Enapter's schema does not define it, so the platform ignores it; keys starting with . are free for templates and anchors)`,
		`m.yml:17:7: warning: commands.c.arguments.x.requried: unknown field "requried" in commands.c.arguments.x: remove it or fix its name (did you mean required?)`,
	}
	for i, w := range m.Warnings {
		if !w.Warning || w.String() != want[i] {
			t.Errorf("warning %d:\n got %s\nwant %s", i, w, want[i])
		}
	}
	all := append(append([]Problem{}, me.Problems...), m.Warnings...)
	SortProblems(all)
	if all[0].Line != 4 || all[1].Line != 16 || all[2].Line != 17 || all[3].Line != 18 {
		t.Errorf("merged report out of order: %v", all)
	}

	// Without the real error, the manifest loads, warnings and all.
	m, err = Parse("m.yml", []byte(v3+cmdArg("type: float\n      unit: W\n")))
	if err != nil || len(m.Warnings) != 1 || m.Command("c") == nil {
		t.Fatalf("a manifest with only warnings: %v %+v", err, m)
	}
}
