package blueprint

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes a reference of the device — properties, telemetry
// with units, alerts with severity, commands with their arguments,
// configuration — as Markdown tables that can be pasted into a README.
func (m *Manifest) WriteMarkdown(w io.Writer) error {
	b := bufio.NewWriter(w)
	title := m.DisplayName
	if title == "" {
		title = "Device"
	}
	fmt.Fprintf(b, "# %s\n\n", md(title))
	if m.Description != "" {
		fmt.Fprintf(b, "%s\n\n", md(m.Description))
	}
	fmt.Fprintf(b, "Blueprint spec `%s`", m.Spec)
	if len(m.Implements) > 0 {
		fmt.Fprintf(b, "; implements %s", codeList(m.Implements))
	}
	b.WriteString(".\n")

	attrs := func(heading string, as []*Attribute, units bool) {
		if len(as) == 0 {
			return
		}
		fmt.Fprintf(b, "\n## %s\n\n", heading)
		if units {
			b.WriteString("| name | display name | type | unit | values | description |\n|---|---|---|---|---|---|\n")
		} else {
			b.WriteString("| name | display name | type | values | description |\n|---|---|---|---|---|\n")
		}
		for _, a := range as {
			fmt.Fprintf(b, "| `%s` | %s | %s |", a.Name, md(a.DisplayName), a.Type)
			if units {
				fmt.Fprintf(b, " %s |", md(a.Unit))
			}
			fmt.Fprintf(b, " %s | %s |\n", enumCell(a.Enum), md(a.Description))
		}
	}
	attrs("Properties", m.Properties, true)
	attrs("Telemetry", m.Telemetry, true)

	if len(m.Alerts) > 0 {
		b.WriteString("\n## Alerts\n\n| name | severity | display name | code | description |\n|---|---|---|---|---|\n")
		for _, a := range m.Alerts {
			fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", a.Name, a.Severity, md(a.DisplayName), md(a.Code), md(a.Description))
		}
	}
	if len(m.Commands) > 0 {
		b.WriteString("\n## Commands\n")
		for _, c := range m.Commands {
			fmt.Fprintf(b, "\n### `%s` — %s\n\n", c.Name, md(c.DisplayName))
			if c.Description != "" {
				fmt.Fprintf(b, "%s\n\n", md(c.Description))
			}
			if g := m.groups[c.Group]; g != nil {
				fmt.Fprintf(b, "Group: %s.", md(g.DisplayName))
			} else if c.Group != "" {
				fmt.Fprintf(b, "Group: `%s`.", c.Group)
			}
			if len(c.Arguments) == 0 {
				b.WriteString(" No arguments.\n")
				continue
			}
			b.WriteString("\n\n")
			writeArguments(b, c.Arguments)
		}
	}
	if len(m.Configuration) > 0 {
		b.WriteString("\n## Configuration\n")
		for _, cb := range m.Configuration {
			fmt.Fprintf(b, "\n### `%s` — %s\n\n", cb.Name, md(cb.DisplayName))
			if cb.Description != "" {
				fmt.Fprintf(b, "%s\n\n", md(cb.Description))
			}
			writeArguments(b, cb.Parameters)
		}
	}
	return b.Flush()
}

func writeArguments(b *bufio.Writer, args []*Argument) {
	b.WriteString("| argument | display name | type | required | default | allowed | description |\n|---|---|---|---|---|---|---|\n")
	for _, a := range args {
		req := "no"
		if a.Required {
			req = "yes"
		}
		def := ""
		if a.Default != nil {
			def = "`" + formatValue(a.Default) + "`"
		}
		var allowed []string
		if a.Enum != nil {
			allowed = append(allowed, enumCell(a.Enum))
		}
		if a.Min != nil {
			allowed = append(allowed, "≥ "+fmtNum(*a.Min))
		}
		if a.Max != nil {
			allowed = append(allowed, "≤ "+fmtNum(*a.Max))
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s | %s | %s |\n", a.Name, md(a.DisplayName), a.Type, req, def, strings.Join(allowed, ", "), md(a.Description))
	}
}

func enumCell(e *Enum) string {
	if e == nil {
		return ""
	}
	parts := make([]string, 0, len(e.Values))
	for _, v := range e.Values {
		s := "`" + formatValue(v.Value) + "`"
		if v.DisplayName != "" {
			s += " (" + md(v.DisplayName) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func codeList(xs []string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = "`" + x + "`"
	}
	return strings.Join(parts, ", ")
}

// md makes text safe for one Markdown table cell.
func md(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
