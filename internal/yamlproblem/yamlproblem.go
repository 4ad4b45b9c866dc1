// Package yamlproblem owns what the YAML loaders (blueprint manifests,
// Modbus register maps) report: a problem at a position in a file, how it
// prints, and the order a report lists problems in.
package yamlproblem

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one mistake in a YAML file.
type Problem struct {
	File   string
	Line   int    // 1-based; 0 when the problem has no place (the file as a whole)
	Column int    // 1-based
	Path   string // the dotted key, e.g. commands.set_power.arguments.power.min
	// Message says what is wrong and what to do.
	Message string
	// Hint is an optional extra: an example, the allowed values.
	Hint string
	// Warning marks what is accepted but is likely a mistake.
	Warning bool
}

// At returns a problem at node n (no position when n is nil).
func At(file string, n *yaml.Node, path, format string, args ...any) Problem {
	p := Problem{File: file, Path: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	return p
}

// Syntax turns a YAML syntax error into a problem on the line it names
// (no position when it names none), worded the same for every loader:
// "not valid YAML: …" without the parser's own "yaml: line N:" prefix, and
// a hint at the usual causes.
func Syntax(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Problem{File: file, Hint: "fix the syntax first; indent with spaces, quote values containing ': '"}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if n, cerr := strconv.Atoi(m[1]); cerr == nil && n > 0 {
			p.Line, p.Column = n, 1
			msg = strings.TrimPrefix(msg, m[0]+": ")
		}
	}
	p.Message = "not valid YAML: " + msg
	return p
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// String formats the problem as file:line:col: path: message (hint), with
// "warning: " before the path of a warning; the parts a problem lacks are
// left out.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
		if p.Line == 0 {
			b.WriteByte(' ')
		}
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	}
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Hint != "" {
		b.WriteString(" (")
		b.WriteString(p.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Sort puts problems in file order, keeping the order of those at the same
// place, so that a report reads top to bottom.
func Sort(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
}
