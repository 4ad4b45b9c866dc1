//go:build lua

package lua

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func newState(t *testing.T) *State {
	t.Helper()
	s, err := NewState(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func run(t *testing.T, s *State, src string) {
	t.Helper()
	if err := s.Load([]byte(src), "=test"); err != nil {
		t.Fatal(err)
	}
	if err := s.Call(0, 0, time.Second); err != nil {
		t.Fatal(err)
	}
}

func global(t *testing.T, s *State, name string) any {
	t.Helper()
	s.GetGlobal(name)
	defer s.Pop(1)
	v, err := s.ToValue(-1)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Lua 5.3 semantics the marketplace relies on (gopher-lua gets these wrong).
func TestLua53Semantics(t *testing.T) {
	s := newState(t)
	run(t, s, `
		a = tostring(10/2)
		b = 7 // 2
		c = 0xF0 >> 4 | 1
		d = string.unpack('>f', string.pack('BBBB', 0x42, 0x48, 0, 0))
		e = math.tointeger(3.0)
		f = string.format('%d', 3)
		g = 9007199254740993
		h = table.move({1,2,3}, 1, 3, 2)
		goto skip
		i = 'not skipped'
		::skip::
	`)
	want := map[string]any{"a": "5.0", "b": int64(3), "c": int64(15), "d": 50.0, "e": int64(3), "f": "3", "g": int64(9007199254740993), "h": []any{int64(1), int64(1), int64(2), int64(3)}, "i": nil}
	for k, w := range want {
		if got := global(t, s, k); !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %#v, want %#v", k, got, w)
		}
	}
}

func TestGoFunctionsAndErrors(t *testing.T) {
	s := newState(t)
	s.PushFunc(func(s *State) (int, error) {
		if s.Type(1) != TypeNumber {
			return 0, errors.New("add: number expected")
		}
		s.PushInteger(s.ToInteger(1) + s.ToInteger(2))
		return 1, nil
	})
	s.SetGlobal("add")
	s.PushFunc(func(s *State) (int, error) { panic("boom") })
	s.SetGlobal("panics")
	run(t, s, `r = add(2, 3); ok, msg = pcall(add, 'x'); ok2, msg2 = pcall(panics)`)
	if got := global(t, s, "r"); got != int64(5) {
		t.Errorf("r = %v", got)
	}
	if got := global(t, s, "msg"); got != "add: number expected" {
		t.Errorf("msg = %v", got)
	}
	if got, _ := global(t, s, "msg2").(string); !strings.Contains(got, "boom") {
		t.Errorf("msg2 = %v", got)
	}
	err := s.Load([]byte("x = = 1"), "@main.lua")
	if err == nil || !strings.Contains(err.Error(), "main.lua:1:") {
		t.Errorf("syntax error = %v", err)
	}
}

func TestWatchdogStopsRunawayScript(t *testing.T) {
	s := newState(t)
	if err := s.Load([]byte(`while true do pcall(function() while true do end end) end`), "=loop"); err != nil {
		t.Fatal(err)
	}
	err := s.Call(0, 0, 50*time.Millisecond)
	var le *Error
	if !errors.As(err, &le) || !le.Timeout {
		t.Fatalf("err = %v, want a watchdog timeout", err)
	}
	// the state is usable afterwards
	run(t, s, `ok = 1`)
}

func TestMemoryLimit(t *testing.T) {
	s, err := NewState(Options{MemoryLimit: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Load([]byte(`local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 100) .. i end`), "=hog"); err != nil {
		t.Fatal(err)
	}
	if err := s.Call(0, 0, 10*time.Second); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("err = %v, want memory limit", err)
	}
}

func TestValues(t *testing.T) {
	s := newState(t)
	in := map[string]any{"a": []any{int64(1), "x", true}, "b": map[string]any{"c": 1.5}, "e": []any{}}
	if err := s.Push(in); err != nil {
		t.Fatal(err)
	}
	got, err := s.ToValue(-1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("round trip = %#v", got)
	}
	run(t, s, `cyc = {}; cyc.self = cyc; fn = {f = print}`)
	s.GetGlobal("cyc")
	if _, err := s.ToValue(-1); err == nil {
		t.Error("cyclic table converted")
	}
	s.GetGlobal("fn")
	if _, err := s.ToValue(-1); err == nil {
		t.Error("function converted")
	}
}
