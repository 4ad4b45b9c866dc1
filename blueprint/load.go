package blueprint

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	typo "github.com/edk-go/edk/internal/suggest"
	"github.com/edk-go/edk/internal/yamlproblem"
)

// ManifestFile is the name of a manifest inside a blueprint folder.
const ManifestFile = "manifest.yml"

// MaxManifestSize bounds what Load reads; real manifests are tens of KB.
const MaxManifestSize = 4 << 20

// Load reads and checks a manifest. path is the manifest file or the
// blueprint folder holding manifest.yml.
//
// A manifest with problems gives a *ManifestError listing all of them, and
// the manifest as far as it could be read (nil only when the file could not
// be read or is not YAML at all). Use the manifest for runtime checks only
// when err is nil.
func Load(path string) (*Manifest, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("blueprint: %w", err)
	}
	if fi.IsDir() {
		path = filepath.Join(path, ManifestFile)
		if fi, err = os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("blueprint: no %s in %s", ManifestFile, filepath.Dir(path))
			}
			return nil, fmt.Errorf("blueprint: %w", err)
		}
	}
	if fi.Size() > MaxManifestSize {
		return nil, fmt.Errorf("blueprint: %s is %d bytes, more than the %d a manifest may have", path, fi.Size(), MaxManifestSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("blueprint: %w", err)
	}
	return Parse(path, data)
}

// Parse reads and checks a manifest from data; file names it in problems.
// It returns the same results as Load.
func Parse(file string, data []byte) (*Manifest, error) {
	p := &parser{file: file}
	m := p.parse(data)
	SortProblems(p.warnings)
	if m != nil {
		m.Warnings = p.warnings
	}
	if len(p.problems) == 0 {
		return m, nil
	}
	SortProblems(p.problems)
	return m, &ManifestError{File: file, Problems: p.problems}
}

// SortProblems sorts problems by position in the file, keeping the order
// of those at the same place; merging errors and warnings for a report
// goes through it.
func SortProblems(ps []Problem) { yamlproblem.Sort(ps) }

// MustParse is Parse for manifests embedded in programs and tests: it
// panics on any problem.
func MustParse(file string, data []byte) *Manifest {
	m, err := Parse(file, data)
	if err != nil {
		panic(err)
	}
	return m
}

type parser struct {
	file     string
	spec     Spec
	problems []Problem
	warnings []Problem           // fields outside Enapter's schema
	merging  map[*yaml.Node]bool // mappings being merged, to catch cycles
	merged   int                 // pairs copied by merge keys, bounded
}

// maxMerged bounds the work merge keys may cause (a few aliases can ask for
// exponentially many copies).
const maxMerged = 100000

func (p *parser) add(n *yaml.Node, path, hint, format string, args ...any) {
	p.problems = append(p.problems, p.problem(n, path, hint, format, args...))
}

// warn records something Enapter's platform accepts but that is likely a
// mistake: a field its schema does not define.
func (p *parser) warn(n *yaml.Node, path, hint, format string, args ...any) {
	w := p.problem(n, path, hint, format, args...)
	w.Warning = true
	p.warnings = append(p.warnings, w)
}

func (p *parser) problem(n *yaml.Node, path, hint, format string, args ...any) Problem {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	return Problem{File: p.file, Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...), Hint: hint}
}

func (p *parser) parse(data []byte) *Manifest {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		pr := yamlproblem.Syntax(p.file, err)
		if pr.Line == 0 {
			pr.Line, pr.Column = 1, 1 // every manifest problem has a place
		}
		p.problems = append(p.problems, pr)
		return nil
	}
	m := &Manifest{
		File:       p.file,
		properties: map[string]*Attribute{},
		telemetry:  map[string]*Attribute{},
		alerts:     map[string]*Alert{},
		groups:     map[string]*CommandGroup{},
		commands:   map[string]*Command{},
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.add(nil, "", "start with: blueprint_spec: device/3.0", "the manifest is empty")
		return m
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.add(root, "", "start with: blueprint_spec: device/3.0", "the manifest must be a YAML mapping of fields, not a %s", kindName(root))
		return m
	}
	top := p.object(root, "")

	// The spec decides which fields exist: read it first.
	switch n := top.get("blueprint_spec"); {
	case n == nil:
		p.add(root, "blueprint_spec", "add blueprint_spec: device/3.0 (or device/1.0) as the first line", "missing blueprint_spec")
	case Spec(scalar(n)) == SpecV1 || Spec(scalar(n)) == SpecV3:
		p.spec = Spec(scalar(n))
	default:
		p.add(n, "blueprint_spec", "edk reads device/1.0 and device/3.0", "unknown blueprint_spec %q: use device/3.0 for a new blueprint", scalar(n))
		p.spec = Spec(scalar(n)) // checks that depend on the version are skipped
	}
	m.Spec = p.spec
	switch p.spec {
	case SpecV1:
		top.unknownKeys(p, append([]string{"runtime", "configuration"}, topKeysV1...))
		if n := top.keyOf("runtime"); n != nil {
			p.add(n, "runtime", "device/1.0 describes its code with communication_module", "runtime needs blueprint_spec device/3.0")
		}
	case SpecV3:
		top.unknownKeys(p, topKeysV3)
	default:
		top.unknownKeys(p, append(append([]string{}, topKeysV3...), topKeysV1...))
	}

	m.DisplayName = p.requiredString(top, "display_name", "display_name: ACME Inverter 10K")
	m.Description = p.optString(top, "description")
	m.Icon = p.optString(top, "icon")
	m.Vendor = p.optString(top, "vendor")
	m.Category = p.optString(top, "category")
	m.Author = p.optString(top, "author")
	m.License = p.optString(top, "license")
	m.Implements = p.stringList(top, "implements")
	if p.spec == SpecV3 {
		m.Runtime = p.runtime(top)
	}

	if sec := p.section(top, "properties"); sec != nil {
		for _, kv := range sec.pairs {
			if a := p.attribute(kv, sec.path, false); a != nil {
				m.Properties = append(m.Properties, a)
				m.properties[a.Name] = a
			}
		}
	}
	if sec := p.section(top, "telemetry"); sec != nil {
		for _, kv := range sec.pairs {
			if a := p.attribute(kv, sec.path, true); a != nil {
				m.Telemetry = append(m.Telemetry, a)
				m.telemetry[a.Name] = a
			}
		}
	}
	if sec := p.section(top, "alerts"); sec != nil {
		for _, kv := range sec.pairs {
			if a := p.alert(kv, sec.path); a != nil {
				m.Alerts = append(m.Alerts, a)
				m.alerts[a.Name] = a
			}
		}
	}
	if sec := p.section(top, "command_groups"); sec != nil {
		for _, kv := range sec.pairs {
			if g := p.commandGroup(kv, sec.path); g != nil {
				m.CommandGroups = append(m.CommandGroups, g)
				m.groups[g.Name] = g
			}
		}
	}
	type ref struct {
		cmd          *Command
		group, popul *yaml.Node
		key          *yaml.Node
		path         string
	}
	var refs []ref
	if sec := p.section(top, "commands"); sec != nil {
		for _, kv := range sec.pairs {
			c, o := p.command(kv, sec.path)
			if c == nil {
				continue
			}
			m.Commands = append(m.Commands, c)
			m.commands[c.Name] = c
			refs = append(refs, ref{c, o.get("group"), o.get("populate_values_command"), kv.k, o.path})
		}
	}
	// References are checked once every command and group is known.
	for _, r := range refs {
		switch {
		case r.group == nil && len(m.CommandGroups) > 0:
			p.add(r.key, r.path+".group", "declared groups: "+names(m.CommandGroups), "missing group: every command needs one when command_groups are declared")
		case r.group == nil:
			p.add(r.key, r.path+".group", "command_groups: {main: {display_name: Main}}", "missing group: declare a command group and set group: to its name")
		case m.groups[r.cmd.Group] == nil:
			hint := "declare it under command_groups"
			if len(m.CommandGroups) > 0 {
				hint = "declared groups: " + names(m.CommandGroups)
				if s := suggest(r.cmd.Group, groupNames(m.CommandGroups)); s != "" {
					hint = "did you mean " + s + "? " + hint
				}
			}
			p.add(r.group, r.path+".group", hint, "group %q is not declared in command_groups", r.cmd.Group)
		}
		if r.popul != nil && m.commands[r.cmd.PopulateValuesCommand] == nil {
			p.add(r.popul, r.path+".populate_values_command", "name a command declared in this manifest", "populate_values_command %q is not a declared command", r.cmd.PopulateValuesCommand)
		}
	}
	if sec := p.section(top, "configuration"); sec != nil {
		if p.spec == SpecV1 {
			p.add(top.keyOf("configuration"), "configuration", "in device/1.0 use a write_configuration command", "configuration needs blueprint_spec device/3.0")
		}
		for _, kv := range sec.pairs {
			if b := p.bucket(kv, sec.path); b != nil {
				m.Configuration = append(m.Configuration, b)
			}
		}
	}
	return m
}

func names[T interface{ name() string }](xs []T) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.name())
	}
	return b.String()
}

func groupNames(gs []*CommandGroup) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Name
	}
	return out
}

func (g *CommandGroup) name() string { return g.Name }

func (p *parser) runtime(top *object) *Runtime {
	n := top.get("runtime")
	if n == nil {
		p.add(top.node, "runtime", "runtime: {type: embedded}", "missing runtime: device/3.0 requires it; an edk device that runs its own code uses type embedded")
		return nil
	}
	o := p.objectAt(n, "runtime")
	if o == nil {
		return nil
	}
	o.unknownKeys(p, runtimeKeys)
	r := &Runtime{Pos: pos(n), Requirements: p.stringList(o, "requirements")}
	r.Type = p.requiredString(o, "type", "type: lua or type: embedded")
	if r.Type != "" && r.Type != "lua" && r.Type != "embedded" {
		p.add(o.get("type"), "runtime.type", "lua or embedded", "unknown runtime type %q", r.Type)
	}
	return r
}

var nameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
var alertNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// entity starts reading one named entry of a section: it checks the name
// and that the value is a mapping.
func (p *parser) entity(kv pair, parent string, re *regexp.Regexp, keys []string) *object {
	name := kv.k.Value
	path := parent + "." + name
	if !re.MatchString(name) {
		hint := "start with a letter; use letters, digits and _"
		if re == alertNameRe {
			hint = "use letters, digits, _ and -"
		}
		p.add(kv.k, path, hint, "invalid name %q", name)
	}
	o := p.objectAt(kv.v, path)
	if o == nil {
		return nil
	}
	o.key = kv.k
	o.unknownKeys(p, keys)
	return o
}

func (p *parser) attribute(kv pair, parent string, telemetry bool) *Attribute {
	keys := propertyKeys
	if telemetry {
		keys = telemetryKeys
	}
	o := p.entity(kv, parent, nameRe, keys)
	if o == nil {
		return nil
	}
	a := &Attribute{Name: kv.k.Value, Pos: pos(kv.k)}
	if telemetry && (a.Name == "alerts" || a.Name == "timestamp") {
		p.add(kv.k, o.path, "active alerts go in the message's alerts list and are declared under the top-level alerts", "%q is a reserved key of the telemetry message: rename the attribute", a.Name)
	}
	a.DisplayName = p.requiredString(o, "display_name", "display_name: "+title(a.Name))
	a.Description = p.optString(o, "description")
	a.Unit = p.optString(o, "unit")
	a.AccessLevel = p.accessLevel(o, "access_level")
	a.Implements = p.stringList(o, "implements")
	a.Aliases = p.stringList(o, "aliases")
	a.Type = p.typeOf(o, telemetry)
	if n := o.get("enum"); n != nil {
		a.Enum = p.enum(n, o.path+".enum", a.Type, telemetry)
	}
	if p.spec == SpecV3 && (a.Unit == "C" || a.Unit == "F") {
		allow := "allow_unit_c"
		meaning, want := "coulomb", "Cel"
		if a.Unit == "F" {
			allow, meaning, want = "allow_unit_f", "farad", "[degF]"
		}
		if !p.boolField(o, allow) {
			p.add(o.get("unit"), o.path+".unit", fmt.Sprintf("set %s: true if you mean %s", allow, meaning), "unit %q means %s in UCUM: use %s for degrees", a.Unit, meaning, want)
		}
	}
	return a
}

func (p *parser) alert(kv pair, parent string) *Alert {
	o := p.entity(kv, parent, alertNameRe, alertKeys)
	if o == nil {
		return nil
	}
	a := &Alert{Name: kv.k.Value, Pos: pos(kv.k)}
	a.DisplayName = p.requiredString(o, "display_name", "display_name: "+title(a.Name))
	a.Severity = p.requiredString(o, "severity", "severity: info, warning or error")
	if a.Severity != "" && a.Severity != "info" && a.Severity != "warning" && a.Severity != "error" {
		p.add(o.get("severity"), o.path+".severity", "info, warning or error", "unknown severity %q", a.Severity)
	}
	a.Description = p.optString(o, "description")
	a.Code = p.optString(o, "code")
	a.GracePeriod = p.optString(o, "grace_period")
	a.Troubleshooting = p.stringList(o, "troubleshooting")
	return a
}

func (p *parser) commandGroup(kv pair, parent string) *CommandGroup {
	o := p.entity(kv, parent, nameRe, groupKeys)
	if o == nil {
		return nil
	}
	g := &CommandGroup{Name: kv.k.Value, Pos: pos(kv.k)}
	g.DisplayName = p.requiredString(o, "display_name", "display_name: "+title(g.Name))
	g.Description = p.optString(o, "description")
	return g
}

func (p *parser) command(kv pair, parent string) (*Command, *object) {
	o := p.entity(kv, parent, nameRe, commandKeys)
	if o == nil {
		return nil, nil
	}
	c := &Command{Name: kv.k.Value, Pos: pos(kv.k), args: map[string]*Argument{}}
	c.DisplayName = p.requiredString(o, "display_name", "display_name: "+title(c.Name))
	c.Description = p.optString(o, "description")
	c.Group = p.optString(o, "group")
	c.AccessLevel = p.accessLevel(o, "access_level")
	p.accessLevel(o, "read_access_level")
	c.PopulateValuesCommand = p.optString(o, "populate_values_command")
	if n := o.get("confirmation"); n != nil {
		if co := p.objectAt(n, o.path+".confirmation"); co != nil {
			co.key = o.keyOf("confirmation")
			p.requiredString(co, "title", "title: Are you sure?")
			sev := p.requiredString(co, "severity", "severity: info or warning")
			if sev != "" && sev != "info" && sev != "warning" {
				p.add(co.get("severity"), co.path+".severity", "info or warning", "unknown confirmation severity %q", sev)
			}
		}
	}
	if sec := p.section(o, "arguments"); sec != nil {
		for _, akv := range sec.pairs {
			if a := p.argument(akv, sec.path, argumentKeys); a != nil {
				c.Arguments = append(c.Arguments, a)
				c.args[a.Name] = a
				if a.Default != nil {
					c.defaults++
				}
			}
		}
	}
	return c, o
}

func (p *parser) bucket(kv pair, parent string) *ConfigurationBucket {
	o := p.entity(kv, parent, nameRe, bucketKeys)
	if o == nil {
		return nil
	}
	b := &ConfigurationBucket{Name: kv.k.Value, Pos: pos(kv.k)}
	b.DisplayName = p.requiredString(o, "display_name", "display_name: "+title(b.Name))
	b.Description = p.optString(o, "description")
	b.AccessLevel = p.accessLevel(o, "access_level")
	sec := p.section(o, "parameters")
	if sec == nil {
		if o.get("parameters") == nil {
			p.add(o.keyNode(), o.path+".parameters", "parameters: {address: {display_name: Address, type: string}}", "missing parameters: a configuration bucket needs at least one")
		}
		return b
	}
	for _, pkv := range sec.pairs {
		if a := p.argument(pkv, sec.path, parameterKeys); a != nil {
			b.Parameters = append(b.Parameters, a)
		}
	}
	return b
}

func (p *parser) argument(kv pair, parent string, keys []string) *Argument {
	o := p.entity(kv, parent, nameRe, keys)
	if o == nil {
		return nil
	}
	a := &Argument{Name: kv.k.Value, Pos: pos(kv.k)}
	a.DisplayName = p.requiredString(o, "display_name", "display_name: "+title(a.Name))
	a.Description = p.optString(o, "description")
	a.Format = p.optString(o, "format")
	a.Required = p.boolField(o, "required")
	a.Sensitive = p.boolField(o, "sensitive")
	a.Type = p.typeOf(o, false)
	if n := o.get("enum"); n != nil {
		a.Enum = p.enum(n, o.path+".enum", a.Type, false)
	}
	for _, f := range []string{"min", "max"} {
		n := o.get(f)
		if n == nil {
			continue
		}
		v, ok := number(n)
		if !ok {
			p.add(n, o.path+"."+f, "e.g. "+f+": 0", "%s must be a number, not %s", f, describeNode(n))
			continue
		}
		if a.Type != "" && !a.Type.Numeric() {
			p.add(n, o.path+"."+f, "remove it, or make the type integer or float", "%s applies only to integer and float arguments, and this one is %s", f, a.Type)
		}
		if f == "min" {
			a.Min = &v
		} else {
			a.Max = &v
		}
	}
	if a.Min != nil && a.Max != nil && *a.Min > *a.Max {
		p.add(o.get("min"), o.path+".min", "swap them, or correct one", "min %s is greater than max %s", fmtNum(*a.Min), fmtNum(*a.Max))
	}
	if n := o.get("default"); n != nil {
		a.Default = p.defaultValue(n, o.path+".default", a)
	}
	return a
}

// defaultValue checks a default against its argument's type, enum and
// range, and returns it as CheckCommand fills it in (nil when broken).
func (p *parser) defaultValue(n *yaml.Node, path string, a *Argument) any {
	v, ok := scalarValue(n)
	if !ok {
		p.add(n, path, "a default is a string, a number or a boolean", "default must be a single value, not %s", describeNode(n))
		return nil
	}
	if v == nil {
		return nil // default: ~ means no default
	}
	// Enapter's own blueprints write boolean defaults as "true"/"false".
	if s, isStr := v.(string); isStr && a.Type == TypeBoolean && (s == "true" || s == "false") {
		v = s == "true"
	}
	if a.Type == "" {
		return v
	}
	if msg := typeMismatch(a.Type, v); msg != "" {
		p.add(n, path, "", "default %s %s, but the argument is %s", yamlValue(v), msg, article(a.Type))
		return nil
	}
	if a.Enum != nil && !a.Enum.contains(v) {
		p.add(n, path, "allowed: "+a.Enum.list(), "default %s is not one of the enum values", yamlValue(v))
		return nil
	}
	if f, isNum := v.(float64); isNum {
		if a.Min != nil && f < *a.Min {
			p.add(n, path, "", "default %s is below min %s", fmtNum(f), fmtNum(*a.Min))
			return nil
		}
		if a.Max != nil && f > *a.Max {
			p.add(n, path, "", "default %s is above max %s", fmtNum(f), fmtNum(*a.Max))
			return nil
		}
	}
	return v
}

var allTypes = "boolean, string, integer, float, array_of_strings, json"

var typeSynonyms = map[string]Type{
	"object": TypeJSON, "map": TypeJSON, "dict": TypeJSON, "table": TypeJSON,
	"array": TypeArrayOfStrings, "list": TypeArrayOfStrings, "array_of_string": TypeArrayOfStrings, "strings": TypeArrayOfStrings,
	"number": TypeFloat, "double": TypeFloat, "real": TypeFloat, "decimal": TypeFloat, "float64": TypeFloat, "numeric": TypeFloat,
	"int": TypeInteger, "uint": TypeInteger, "long": TypeInteger, "int64": TypeInteger,
	"bool": TypeBoolean, "str": TypeString, "text": TypeString, "enum": TypeString,
}

func (p *parser) typeOf(o *object, telemetry bool) Type {
	n := o.get("type")
	if n == nil {
		p.add(o.keyNode(), o.path+".type", "one of: "+allTypes, "missing type: add it")
		return ""
	}
	s := scalar(n)
	t := Type(s)
	switch t {
	case TypeBoolean, TypeString, TypeInteger, TypeFloat, TypeArrayOfStrings:
		return t
	case TypeJSON:
		if p.spec == SpecV1 {
			p.add(n, o.path+".type", "or send the JSON as a string", "type json needs blueprint_spec device/3.0")
		}
		return t
	case TypeAlerts:
		if !telemetry {
			p.add(n, o.path+".type", "declare alerts under the top-level alerts", "type alerts is only for telemetry attributes")
			return ""
		}
		if p.spec == SpecV1 {
			p.add(n, o.path+".type", "in device/1.0 send alerts in the message's alerts list", "type alerts needs blueprint_spec device/3.0")
		}
		return t
	}
	hint := "one of: " + allTypes
	if telemetry && p.spec == SpecV3 {
		hint += ", alerts"
	}
	if syn, ok := typeSynonyms[strings.ToLower(s)]; ok {
		hint = "use " + string(syn)
	} else if sg := suggest(s, []string{"boolean", "string", "integer", "float", "array_of_strings", "json"}); sg != "" {
		hint = "did you mean " + sg + "?"
	}
	p.add(n, o.path+".type", hint, "unknown type %q", s)
	return ""
}

var colors = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range []string{"blue", "yellow", "green", "red", "cyan", "pink", "purple", "orange"} {
		for _, shade := range []string{"-lighter", "-light", "", "-dark", "-darker"} {
			m[c+shade] = true
		}
	}
	return m
}()

func (p *parser) enum(n *yaml.Node, path string, t Type, telemetry bool) *Enum {
	n = resolve(n)
	e := &Enum{}
	seen := map[string]bool{}
	addValue := func(vn *yaml.Node, v any, ev EnumValue) {
		ev.Value = v
		if t != "" && t != TypeJSON {
			if msg := typeMismatch(t, v); msg != "" {
				hint := ""
				if t == TypeString {
					hint = "quote it: \"" + vn.Value + "\""
				}
				p.add(vn, path, hint, "enum value %s %s, but the type is %s", yamlValue(v), msg, t)
				return
			}
		}
		k := fmt.Sprintf("%T:%v", v, v)
		if seen[k] {
			p.add(vn, path, "remove the repeated one", "enum value %s is listed twice", yamlValue(v))
			return
		}
		seen[k] = true
		e.Values = append(e.Values, ev)
	}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, item := range n.Content {
			item = resolve(item)
			v, ok := scalarValue(item)
			if !ok || v == nil {
				p.add(item, path, "list plain values, or use a map of value → {display_name, color}", "enum values must be strings or numbers, not %s", describeNode(item))
				continue
			}
			addValue(item, v, EnumValue{})
		}
	case yaml.MappingNode:
		o := p.object(n, path)
		for _, kv := range o.pairs {
			v, ok := scalarValue(kv.k)
			if !ok || v == nil {
				p.add(kv.k, path, "", "enum value must be a string or a number")
				continue
			}
			ev := EnumValue{}
			ipath := path + "." + kv.k.Value
			if vn := resolve(kv.v); !(vn.Kind == yaml.ScalarNode && vn.Tag == "!!null") {
				io := p.objectAt(kv.v, ipath)
				if io != nil {
					io.unknownKeys(p, enumItemKeys)
					ev.DisplayName = p.optString(io, "display_name")
					ev.Description = p.optString(io, "description")
					ev.Color = p.optString(io, "color")
					if ev.Color != "" && p.spec == SpecV3 && !colors[ev.Color] {
						hint := "e.g. green, red-light, blue-darker"
						if sg := suggest(ev.Color, mapKeys(colors)); sg != "" {
							hint = "did you mean " + sg + "?"
						}
						p.add(io.get("color"), ipath+".color", hint, "unknown color %q", ev.Color)
					}
				}
			}
			addValue(kv.k, v, ev)
		}
	default:
		p.add(n, path, "a list of values, or a map of value → {display_name, color}", "enum must be a list or a map, not %s", describeNode(n))
		return nil
	}
	if len(e.Values) == 0 && len(n.Content) == 0 {
		p.add(n, path, "remove enum to allow any value", "enum is empty: no value could ever be sent")
	}
	e.compile()
	return e
}

func (e *Enum) compile() {
	for _, v := range e.Values {
		switch v := v.Value.(type) {
		case string:
			if e.strs == nil {
				e.strs = map[string]struct{}{}
			}
			e.strs[v] = struct{}{}
		case float64:
			e.nums = append(e.nums, v)
		case bool:
			if e.strs == nil {
				e.strs = map[string]struct{}{}
			}
			e.strs[strconv.FormatBool(v)] = struct{}{} // booleans are matched by their own type check
		}
	}
}

// list is the enum values for a message.
func (e *Enum) list() string {
	var b strings.Builder
	for i, v := range e.Values {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 16 {
			fmt.Fprintf(&b, "… (%d in all)", len(e.Values))
			break
		}
		if s, ok := v.Value.(string); ok {
			b.WriteString(strconv.Quote(s))
		} else {
			fmt.Fprint(&b, formatValue(v.Value))
		}
	}
	return b.String()
}

func (p *parser) accessLevel(o *object, key string) string {
	s := p.optString(o, key)
	switch s {
	case "", "readonly", "user", "owner", "installer", "vendor", "system":
		return s
	}
	p.add(o.get(key), o.path+"."+key, "readonly, user, owner, installer, vendor or system", "unknown access level %q", s)
	return s
}

// section reads a mapping of named entries (properties, commands, …),
// skipping keys that start with "." (templates).
func (p *parser) section(o *object, key string) *object {
	n := o.get(key)
	if n == nil {
		return nil
	}
	path := joinPath(o.path, key)
	rn := resolve(n)
	if rn.Kind == yaml.ScalarNode && rn.Tag == "!!null" {
		return nil // "commands:" with nothing under it
	}
	s := p.objectAt(n, path)
	if s == nil {
		return nil
	}
	kept := s.pairs[:0:0]
	for _, kv := range s.pairs {
		if !strings.HasPrefix(kv.k.Value, ".") {
			kept = append(kept, kv)
		}
	}
	s.pairs = kept
	return s
}

func (p *parser) requiredString(o *object, key, example string) string {
	n := o.get(key)
	if n == nil {
		p.add(o.keyNode(), joinPath(o.path, key), "e.g. "+example, "missing %s: add it", key)
		return ""
	}
	s, ok := p.stringOf(n, joinPath(o.path, key))
	if ok && strings.TrimSpace(s) == "" {
		p.add(n, joinPath(o.path, key), example, "%s is empty", key)
	}
	return s
}

func (p *parser) optString(o *object, key string) string {
	n := o.get(key)
	if n == nil {
		return ""
	}
	s, _ := p.stringOf(n, joinPath(o.path, key))
	return s
}

func (p *parser) stringOf(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		p.add(n, path, "", "must be a single value, not %s", describeNode(n))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	return n.Value, true
}

func (p *parser) boolField(o *object, key string) bool {
	n := o.get(key)
	if n == nil {
		return false
	}
	rn := resolve(n)
	if rn.Kind == yaml.ScalarNode && rn.Tag == "!!bool" {
		var b bool
		if rn.Decode(&b) == nil {
			return b
		}
	}
	p.add(n, joinPath(o.path, key), key+": true or "+key+": false", "%s must be true or false, not %s", key, describeNode(rn))
	return false
}

// stringList reads a string or a list of strings.
func (p *parser) stringList(o *object, key string) []string {
	n := o.get(key)
	if n == nil {
		return nil
	}
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil
		}
		return []string{n.Value}
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, it := range n.Content {
			it = resolve(it)
			if it.Kind != yaml.ScalarNode {
				p.add(it, joinPath(o.path, key), "", "must list plain strings, not %s", describeNode(it))
				continue
			}
			out = append(out, it.Value)
		}
		return out
	}
	p.add(n, joinPath(o.path, key), "", "must be a string or a list of strings, not %s", describeNode(n))
	return nil
}

// --- YAML helpers ---

type pair struct{ k, v *yaml.Node }

// object is a mapping with its merge keys applied, in file order.
type object struct {
	node  *yaml.Node
	key   *yaml.Node // the key this mapping is the value of, for positions of missing fields
	path  string
	pairs []pair
	index map[string]int
}

func (o *object) get(key string) *yaml.Node {
	if i, ok := o.index[key]; ok {
		return o.pairs[i].v
	}
	return nil
}

func (o *object) keyOf(key string) *yaml.Node {
	if i, ok := o.index[key]; ok {
		return o.pairs[i].k
	}
	return nil
}

func (o *object) keyNode() *yaml.Node {
	if o.key != nil {
		return o.key
	}
	return o.node
}

func (o *object) unknownKeys(p *parser, known []string) {
	for _, kv := range o.pairs {
		k := kv.k.Value
		if strings.HasPrefix(k, ".") || contains(known, k) {
			continue
		}
		// Enapter's platform takes fields its schema does not define (seven
		// of its published manifests have a unit on command arguments), so
		// they are warnings: likely a typo, never a reason to refuse.
		hint := "Enapter's schema does not define it, so the platform ignores it; keys starting with . are free for templates and anchors"
		if s := suggest(k, known); s != "" {
			hint = "did you mean " + s + "?"
		}
		where := "the manifest"
		if o.path != "" {
			where = o.path
		}
		p.warn(kv.k, joinPath(o.path, k), hint, "unknown field %q in %s: remove it or fix its name", k, where)
	}
}

// objectAt reads n as a mapping, reporting it when it is something else.
func (p *parser) objectAt(n *yaml.Node, path string) *object {
	rn := resolve(n)
	if rn.Kind != yaml.MappingNode {
		p.add(n, path, "", "must be a mapping of fields, not %s", describeNode(rn))
		return nil
	}
	return p.object(rn, path)
}

const maxMergeDepth = 8

func (p *parser) object(n *yaml.Node, path string) *object {
	o := &object{node: n, path: path, index: map[string]int{}}
	p.collect(o, n, path, 0, true)
	return o
}

// collect adds n's pairs to o. Explicit keys win over merged ones (<<: *x);
// an explicit key given twice is a problem.
func (p *parser) collect(o *object, n *yaml.Node, path string, depth int, explicit bool) {
	if depth > maxMergeDepth || p.merged > maxMerged {
		p.add(n, path, "", "merge keys (<<) nested too deep or too many")
		return
	}
	if p.merging == nil {
		p.merging = map[*yaml.Node]bool{}
	}
	if p.merging[n] {
		p.add(n, path, "", "a merge key (<<) includes the mapping it is in")
		return
	}
	p.merging[n] = true
	defer delete(p.merging, n)
	// explicit keys of this mapping, so that merges never override them
	own := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !isMerge(k) {
			own[k.Value] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			rv := resolve(v)
			var srcs []*yaml.Node
			switch rv.Kind {
			case yaml.MappingNode:
				srcs = []*yaml.Node{rv}
			case yaml.SequenceNode:
				for _, it := range rv.Content {
					srcs = append(srcs, resolve(it))
				}
			default:
				srcs = []*yaml.Node{rv}
			}
			for _, src := range srcs {
				if src.Kind != yaml.MappingNode {
					p.add(v, path, "<<: *anchor of a mapping", "a merge key (<<) must name a mapping")
					continue
				}
				sub := &object{index: map[string]int{}}
				p.collect(sub, src, path, depth+1, false)
				p.merged += len(sub.pairs)
				for _, kv := range sub.pairs {
					if own[kv.k.Value] {
						continue
					}
					if _, dup := o.index[kv.k.Value]; dup {
						continue
					}
					o.index[kv.k.Value] = len(o.pairs)
					o.pairs = append(o.pairs, kv)
				}
			}
			continue
		}
		rk := resolve(k)
		if rk.Kind != yaml.ScalarNode {
			p.add(k, path, "", "keys must be plain names, not %s", describeNode(rk))
			continue
		}
		if j, dup := o.index[rk.Value]; dup {
			if explicit || own[rk.Value] {
				first := o.pairs[j].k
				p.add(k, joinPath(path, rk.Value), fmt.Sprintf("the first is at line %d", first.Line), "%q is declared twice: names must be unique, remove or rename one", rk.Value)
			}
			continue
		}
		o.index[rk.Value] = len(o.pairs)
		o.pairs = append(o.pairs, pair{rk, v})
	}
}

func isMerge(k *yaml.Node) bool { return k.Kind == yaml.ScalarNode && k.Tag == "!!merge" }

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxMergeDepth; i++ {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return resolve(n.Content[0])
	}
	return n
}

func scalar(n *yaml.Node) string {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// scalarValue returns a scalar as a string, float64, bool or nil.
func scalarValue(n *yaml.Node) (any, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		return nil, false
	}
	switch n.Tag {
	case "!!null":
		return nil, true
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b, true
		}
	case "!!int", "!!float":
		if f, ok := number(n); ok {
			return f, true
		}
	}
	return n.Value, true
}

func number(n *yaml.Node) (float64, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		return 0, false
	}
	var f float64
	if err := n.Decode(&f); err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

func pos(n *yaml.Node) Pos { return Pos{n.Line, n.Column} }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.ScalarNode:
		return "single value"
	}
	return "document"
}

func describeNode(n *yaml.Node) string {
	n = resolve(n)
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return strconv.Quote(v)
	}
	return "nothing"
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func title(name string) string {
	words := strings.FieldsFunc(name, func(r rune) bool { return r == '_' || r == '-' })
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// suggest returns the candidate closest to s, if it is close enough to be
// a typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := typo.Distance(strings.ToLower(s), c); d < bestD {
			best, bestD = c, d
		}
	}
	if len(s) <= 2 && bestD > 0 {
		return ""
	}
	return best
}

// The fields Enapter's schemas define (device/1.0 and device/3.0 merged
// where an entity exists in both).
var (
	topKeysV3 = []string{"blueprint_spec", "implements", "implements_draft", "category", "display_name", "description", "icon",
		"properties", "telemetry", "command_groups", "commands", "alerts", "telemetry_preprocessor", "virtual_commands",
		"runtime", "author", "contributors", "support", "license", "units", "configuration"}
	topKeysV1 = []string{"blueprint_spec", "implements", "implements_draft", "display_name", "description", "icon", "vendor",
		"properties", "telemetry", "command_groups", "commands", "alerts", "communication_module", "communication_modules",
		"author", "contributors", "support", "license", "verification_level"}
	runtimeKeys  = []string{"type", "options", "requirements"}
	propertyKeys = []string{"type", "implements", "aliases", "unit", "allow_unit_c", "allow_unit_f", "auto_scale",
		"display_name", "description", "enum", "access_level", "json_schema", "communication_module"}
	telemetryKeys = propertyKeys
	groupKeys     = []string{"display_name", "description", "ui"}
	commandKeys   = []string{"implements", "aliases", "group", "communication_module", "display_name", "description",
		"arguments", "response", "virtual", "ui", "confirmation", "access_level", "read_access_level", "populate_values_command"}
	argumentKeys  = []string{"display_name", "description", "required", "type", "min", "max", "enum", "format", "json_schema", "sensitive", "default"}
	parameterKeys = []string{"display_name", "description", "type", "default", "required", "sensitive", "min", "max", "enum", "format"}
	alertKeys     = []string{"severity", "code", "grace_period", "display_name", "description", "troubleshooting", "telemetry", "components", "conditions"}
	bucketKeys    = []string{"display_name", "description", "access_level", "ui", "parameters", "virtual_commands"}
	enumItemKeys  = []string{"display_name", "description", "color"}
)

// yamlValue shows a manifest value as it would be written.
func yamlValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return formatValue(v)
}
