package modbus

import (
	"fmt"
	"slices"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/internal/suggest"
)

// CheckManifest compares the map with the device's blueprint manifest: every
// mapped telemetry value, property, alert and command must be declared
// there, with a compatible type. It returns one line per problem, each
// naming the map's line and sorted by it (a name the manifest lacks gets
// the closest one it declares), so that `edk run --config --manifest` can
// refuse to start a device the platform would misread.
func (m *Map) CheckManifest(man *blueprint.Manifest) []string {
	type problem struct {
		line int
		msg  string
	}
	var problems []problem
	add := func(line int, format string, args ...any) {
		problems = append(problems, problem{line, fmt.Sprintf(format, args...)})
	}
	undeclared := func(line int, noun, section, name string, declared []string) {
		msg := fmt.Sprintf("%s %q is not declared in the manifest's %s", noun, name, section)
		if s := suggest.Closest(name, declared); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		add(line, "%s", msg)
	}
	check := func(noun, section string, v Value, decl *blueprint.Attribute, declared []string) {
		if decl == nil {
			undeclared(v.Line, noun, section, v.Name, declared)
			return
		}
		if want := v.manifestType(); !compatible(want, decl.Type) {
			add(v.Line, "%s %q reads as %s, but the manifest declares %s", noun, v.Name, want, decl.Type)
		}
	}
	telemetry, properties := names(man.Telemetry), names(man.Properties)
	for _, v := range m.Telemetry {
		check("telemetry attribute", "telemetry", v, man.TelemetryAttribute(v.Name), telemetry)
	}
	for _, v := range m.Properties {
		check("property", "properties", v, man.Property(v.Name), properties)
	}
	var alerts, commands []string
	for _, a := range man.Alerts {
		alerts = append(alerts, a.Name)
	}
	for _, c := range man.Commands {
		commands = append(commands, c.Name)
	}
	for _, a := range m.Alerts {
		if man.Alert(a.Name) == nil {
			undeclared(a.Line, "alert", "alerts", a.Name, alerts)
		}
	}
	for _, c := range m.Commands {
		if man.Command(c.Name) == nil {
			undeclared(c.Line, "command", "commands", c.Name, commands)
		}
	}
	slices.SortStableFunc(problems, func(a, b problem) int { return a.line - b.line })
	out := make([]string, 0, len(problems)+1)
	for _, p := range problems {
		out = append(out, fmt.Sprintf("line %d: %s", p.line, p.msg))
	}
	if len(m.Telemetry) > 0 && man.Alert(driver.CommunicationError) == nil {
		// about the manifest, not a line of the map: last
		out = append(out, fmt.Sprintf("the manifest does not declare the alert %q, which the driver raises when a read fails", driver.CommunicationError))
	}
	return out
}

func names(attrs []*blueprint.Attribute) []string {
	out := make([]string, len(attrs))
	for i, a := range attrs {
		out[i] = a.Name
	}
	return out
}

// manifestType is the blueprint type of the values v produces.
func (v Value) manifestType() blueprint.Type {
	switch {
	case len(v.Map) > 0 || v.Type == String:
		return blueprint.TypeString
	case v.Type == Bool:
		return blueprint.TypeBoolean
	case v.Type == Float32 || v.Type == Float64 || v.Scale != 1 || v.Offset != 0:
		return blueprint.TypeFloat
	}
	return blueprint.TypeInteger
}

// compatible reports whether values of type got may be sent as declared.
// An integer fits a float attribute; nothing else converts.
func compatible(got, declared blueprint.Type) bool {
	return got == declared || got == blueprint.TypeInteger && declared == blueprint.TypeFloat
}
