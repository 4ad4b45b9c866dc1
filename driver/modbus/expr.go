package modbus

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// The alert expression language, on purpose tiny:
//
//	expr    = and { "or" and }
//	and     = factor { "and" factor }
//	factor  = "(" expr ")" | compare
//	compare = operand ( "<" | "<=" | ">" | ">=" | "==" | "!=" ) operand
//	operand = attribute | number | "quoted string" | true | false
//
// An attribute is a telemetry attribute of the same map. A comparison with
// an attribute that has no current value is false. Strings and booleans
// compare only with == and !=.

type expr interface {
	eval(vals map[string]any) bool
	idents(dst []string) []string
}

type orExpr struct{ a, b expr }
type andExpr struct{ a, b expr }
type cmpExpr struct {
	op   string
	l, r operand
}
type operand struct {
	ident string
	lit   any // float64, string or bool
}

func (e orExpr) eval(v map[string]any) bool  { return e.a.eval(v) || e.b.eval(v) }
func (e andExpr) eval(v map[string]any) bool { return e.a.eval(v) && e.b.eval(v) }
func (e orExpr) idents(d []string) []string  { return e.b.idents(e.a.idents(d)) }
func (e andExpr) idents(d []string) []string { return e.b.idents(e.a.idents(d)) }
func (e cmpExpr) idents(d []string) []string {
	for _, o := range []operand{e.l, e.r} {
		if o.ident != "" {
			d = append(d, o.ident)
		}
	}
	return d
}

func (o operand) value(vals map[string]any) (any, bool) {
	if o.ident == "" {
		return o.lit, true
	}
	v, ok := vals[o.ident]
	if !ok {
		return nil, false
	}
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64, string, bool:
		return x, true
	}
	return nil, false
}

func (e cmpExpr) eval(vals map[string]any) bool {
	l, ok1 := e.l.value(vals)
	r, ok2 := e.r.value(vals)
	if !ok1 || !ok2 {
		return false
	}
	lf, lnum := l.(float64)
	rf, rnum := r.(float64)
	if lnum && rnum {
		switch e.op {
		case "<":
			return lf < rf
		case "<=":
			return lf <= rf
		case ">":
			return lf > rf
		case ">=":
			return lf >= rf
		case "==":
			return lf == rf
		case "!=":
			return lf != rf
		}
		return false
	}
	switch e.op {
	case "==":
		return l == r
	case "!=":
		return l != r
	}
	return false
}

type exprParser struct {
	toks []string
	pos  int
}

const maxExprLen = 1024

func parseExpr(s string) (expr, error) {
	if len(s) > maxExprLen {
		return nil, fmt.Errorf("the expression is longer than %d characters", maxExprLen)
	}
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf(`the expression is empty; write e.g. "temperature > 80"`)
	}
	p := &exprParser{toks: toks}
	e, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q after a complete expression", p.toks[p.pos])
	}
	return e, nil
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case strings.ContainsRune("<>=!", c):
			j := i + 1
			if j < len(s) && s[j] == '=' {
				j++
			}
			op := s[i:j]
			if op == "=" || op == "!" {
				return nil, fmt.Errorf("unknown operator %q; use <, <=, >, >=, == or !=", op)
			}
			toks = append(toks, op)
			i = j
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("unterminated string in the expression")
			}
			toks = append(toks, s[i:i+j+2])
			i += j + 2
		case c == '-' || c == '+' || c == '.' || unicode.IsDigit(c) || unicode.IsLetter(c) || c == '_':
			j := i + 1
			for j < len(s) && (s[j] == '.' || s[j] == '_' || s[j] == '+' && (s[j-1] == 'e' || s[j-1] == 'E') ||
				s[j] == '-' && (s[j-1] == 'e' || s[j-1] == 'E') || unicode.IsDigit(rune(s[j])) || unicode.IsLetter(rune(s[j]))) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q in the expression", c)
		}
	}
	return toks, nil
}

func (p *exprParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

const maxExprDepth = 32

func (p *exprParser) or(depth int) (expr, error) {
	e, err := p.and(depth)
	for err == nil && p.peek() == "or" {
		p.pos++
		var r expr
		if r, err = p.and(depth); err == nil {
			e = orExpr{e, r}
		}
	}
	return e, err
}

func (p *exprParser) and(depth int) (expr, error) {
	e, err := p.factor(depth)
	for err == nil && p.peek() == "and" {
		p.pos++
		var r expr
		if r, err = p.factor(depth); err == nil {
			e = andExpr{e, r}
		}
	}
	return e, err
}

func (p *exprParser) factor(depth int) (expr, error) {
	if depth > maxExprDepth {
		return nil, fmt.Errorf("the expression nests deeper than %d parentheses", maxExprDepth)
	}
	if p.peek() == "(" {
		p.pos++
		e, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return e, nil
	}
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	op := p.peek()
	switch op {
	case "<", "<=", ">", ">=", "==", "!=":
		p.pos++
	case "":
		return nil, fmt.Errorf("%q needs a comparison, e.g. %s > 80", p.toks[p.pos-1], p.toks[p.pos-1])
	default:
		return nil, fmt.Errorf("want a comparison operator (<, <=, >, >=, ==, !=), got %q", op)
	}
	r, err := p.operand()
	if err != nil {
		return nil, err
	}
	if l.ident == "" && r.ident == "" {
		return nil, fmt.Errorf("a comparison needs an attribute on one side")
	}
	for _, o := range []operand{l, r} {
		if _, isNum := o.lit.(float64); o.lit != nil && !isNum && op != "==" && op != "!=" {
			return nil, fmt.Errorf("%s compares numbers only; use == or != for strings and booleans", op)
		}
	}
	return cmpExpr{op: op, l: l, r: r}, nil
}

func (p *exprParser) operand() (operand, error) {
	t := p.peek()
	if t == "" {
		return operand{}, fmt.Errorf("the expression ends too early")
	}
	p.pos++
	switch {
	case t == "true" || t == "false":
		return operand{lit: t == "true"}, nil
	case t == "and" || t == "or":
		return operand{}, fmt.Errorf("want an attribute or a value, got %q", t)
	case t[0] == '"':
		return operand{lit: t[1 : len(t)-1]}, nil
	case nameRE.MatchString(t):
		return operand{ident: t}, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return operand{}, fmt.Errorf("%q is neither an attribute nor a number", t)
	}
	return operand{lit: f}, nil
}
