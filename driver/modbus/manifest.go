package modbus

import (
	"fmt"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/driver"
)

// CheckManifest compares the map with the device's blueprint manifest: every
// mapped telemetry value, property, alert and command must be declared
// there, with a compatible type. It returns one line per problem, each
// naming the map's line, so that `edk run --config --manifest` can refuse
// to start a device the platform would misread.
func (m *Map) CheckManifest(man *blueprint.Manifest) []string {
	var problems []string
	add := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("line %d: %s", line, fmt.Sprintf(format, args...)))
	}
	check := func(kind string, v Value, decl *blueprint.Attribute) {
		if decl == nil {
			add(v.Line, "%s %q is not declared in the manifest's %s", kind, v.Name, kind)
			return
		}
		if want := v.manifestType(); !compatible(want, decl.Type) {
			add(v.Line, "%s %q reads as %s, but the manifest declares %s", kind, v.Name, want, decl.Type)
		}
	}
	for _, v := range m.Telemetry {
		check("telemetry", v, man.TelemetryAttribute(v.Name))
	}
	for _, v := range m.Properties {
		check("properties", v, man.Property(v.Name))
	}
	for _, a := range m.Alerts {
		if man.Alert(a.Name) == nil {
			problems = append(problems, fmt.Sprintf("alert %q is not declared in the manifest's alerts", a.Name))
		}
	}
	if len(m.Telemetry) > 0 && man.Alert(driver.CommunicationError) == nil {
		problems = append(problems, fmt.Sprintf("the manifest does not declare the alert %q, which the driver raises when a read fails", driver.CommunicationError))
	}
	for _, c := range m.Commands {
		if man.Command(c.Name) == nil {
			problems = append(problems, fmt.Sprintf("command %q is not declared in the manifest's commands", c.Name))
		}
	}
	return problems
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
