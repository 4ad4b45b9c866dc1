package blueprint

// Spec is a manifest's blueprint_spec.
type Spec string

// The blueprint specifications this package reads.
const (
	SpecV1 Spec = "device/1.0"
	SpecV3 Spec = "device/3.0"
)

// Type is the declared type of a property, telemetry attribute, argument or
// configuration parameter.
type Type string

// The types of Enapter's manifest schema. TypeJSON and TypeAlerts are
// device/3.0 only; TypeAlerts only for telemetry (a list of alert names, as
// a conn_alerts attribute).
const (
	TypeBoolean        Type = "boolean"
	TypeString         Type = "string"
	TypeInteger        Type = "integer"
	TypeFloat          Type = "float"
	TypeArrayOfStrings Type = "array_of_strings"
	TypeJSON           Type = "json"
	TypeAlerts         Type = "alerts"
)

// Numeric reports whether values of t are numbers.
func (t Type) Numeric() bool { return t == TypeInteger || t == TypeFloat }

// Pos is a position in the manifest file, 1-based.
type Pos struct {
	Line, Column int
}

// Manifest is a loaded manifest.yml. Slices keep the order of the file.
// Look-ups by name go through the methods (Command, Alert, …).
type Manifest struct {
	File        string // as given to Load or Parse
	Spec        Spec
	DisplayName string
	Description string
	Icon        string
	Vendor      string // device/1.0
	Category    string // device/3.0
	Author      string
	License     string
	Implements  []string
	Runtime     *Runtime // device/3.0; nil when absent

	Properties    []*Attribute
	Telemetry     []*Attribute
	Alerts        []*Alert
	CommandGroups []*CommandGroup
	Commands      []*Command
	Configuration []*ConfigurationBucket // device/3.0

	// Warnings are what Enapter's platform accepts but is likely a mistake
	// (fields its schema does not define), sorted by position. They do not
	// make Load or Parse fail.
	Warnings []Problem

	properties map[string]*Attribute
	telemetry  map[string]*Attribute
	alerts     map[string]*Alert
	groups     map[string]*CommandGroup
	commands   map[string]*Command
}

// Property returns the declared property name, or nil.
func (m *Manifest) Property(name string) *Attribute { return m.properties[name] }

// TelemetryAttribute returns the declared telemetry attribute name, or nil.
func (m *Manifest) TelemetryAttribute(name string) *Attribute { return m.telemetry[name] }

// Alert returns the declared alert name, or nil.
func (m *Manifest) Alert(name string) *Alert { return m.alerts[name] }

// CommandGroup returns the declared command group name, or nil.
func (m *Manifest) CommandGroup(name string) *CommandGroup { return m.groups[name] }

// Command returns the declared command name, or nil.
func (m *Manifest) Command(name string) *Command { return m.commands[name] }

// Runtime is the device/3.0 runtime section.
type Runtime struct {
	Pos          Pos
	Type         string // lua or embedded
	Requirements []string
}

// Attribute is a property or a telemetry attribute.
type Attribute struct {
	Name        string
	Pos         Pos
	Type        Type
	DisplayName string
	Description string
	Unit        string
	AccessLevel string
	Implements  []string
	Aliases     []string
	Enum        *Enum // nil when any value of Type is allowed
}

// Enum is the set of allowed values, given in the manifest as a list or as
// a map of value → {display_name, description, color}.
type Enum struct {
	Values []EnumValue

	strs map[string]struct{}
	nums []float64
}

// EnumValue is one allowed value. Value is a string, a float64 (every
// number) or a bool.
type EnumValue struct {
	Value       any
	DisplayName string
	Description string
	Color       string
}

// Alert is a declared alert.
type Alert struct {
	Name            string
	Pos             Pos
	Severity        string // info, warning or error
	DisplayName     string
	Description     string
	Code            string
	GracePeriod     string
	Troubleshooting []string
}

// CommandGroup is a heading for commands.
type CommandGroup struct {
	Name        string
	Pos         Pos
	DisplayName string
	Description string
}

// Command is a declared command.
type Command struct {
	Name                  string
	Pos                   Pos
	DisplayName           string
	Description           string
	Group                 string
	AccessLevel           string
	PopulateValuesCommand string
	Arguments             []*Argument

	args     map[string]*Argument
	defaults int // arguments with a default
}

// Argument returns the declared argument name, or nil.
func (c *Command) Argument(name string) *Argument { return c.args[name] }

// Argument is a command argument or a configuration parameter.
type Argument struct {
	Name        string
	Pos         Pos
	Type        Type
	DisplayName string
	Description string
	Required    bool
	// Default is filled in by CheckCommand when the argument is absent: a
	// string, a float64 (numbers, as encoding/json decodes them) or a bool;
	// nil when there is none.
	Default   any
	Min, Max  *float64
	Enum      *Enum
	Format    string
	Sensitive bool
}

// ConfigurationBucket is a device/3.0 configuration section.
type ConfigurationBucket struct {
	Name        string
	Pos         Pos
	DisplayName string
	Description string
	AccessLevel string
	Parameters  []*Argument
}
