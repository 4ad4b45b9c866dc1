package yamlproblem

import (
	"errors"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "m.yml", Line: 3, Column: 5, Path: "a.b", Message: "bad", Hint: "do this"}, "m.yml:3:5: a.b: bad (do this)"},
		{Problem{File: "m.yml", Line: 3, Column: 5, Path: "a.b", Message: "odd", Warning: true}, "m.yml:3:5: warning: a.b: odd"},
		{Problem{File: "map.yaml", Message: "the register map is empty"}, "map.yaml: the register map is empty"},
		{Problem{Line: 2, Column: 1, Path: "modbus", Message: "missing"}, "2:1: modbus: missing"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestSortKeepsOrderAtOnePlace(t *testing.T) {
	ps := []Problem{{Line: 9, Message: "c"}, {Line: 2, Column: 4, Message: "b1"}, {Line: 2, Column: 4, Message: "b2"}, {Line: 2, Column: 1, Message: "a"}}
	Sort(ps)
	var got string
	for _, p := range ps {
		got += p.Message + " "
	}
	if got != "a b1 b2 c " {
		t.Errorf("sorted: %s", got)
	}
}

func TestSyntaxAndAt(t *testing.T) {
	var n yaml.Node
	err := yaml.Unmarshal([]byte("a: 1\nb: [\n"), &n)
	if err == nil {
		t.Fatal("bad YAML parsed")
	}
	// The parser's "yaml: line 2:" is said once, as the position.
	const hint = " (fix the syntax first; indent with spaces, quote values containing ': ')"
	if p := Syntax("f.yml", err); p.String() != "f.yml:2:1: not valid YAML: did not find expected node content"+hint {
		t.Errorf("Syntax: %s", p)
	}
	if p := Syntax("f.yml", errors.New("no line here")); p.Line != 0 || p.String() != "f.yml: not valid YAML: no line here"+hint {
		t.Errorf("Syntax without a line: %s", p)
	}
	if p := At("f.yml", &yaml.Node{Line: 4, Column: 2}, "x.y", "want %d", 3); p.String() != "f.yml:4:2: x.y: want 3" {
		t.Errorf("At: %s", p)
	}
}
