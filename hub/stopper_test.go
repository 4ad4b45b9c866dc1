package hub

import (
	"errors"
	"slices"
	"testing"
)

func TestStopperRunsStopsLastFirstAndReturnsTheFirstError(t *testing.T) {
	var s stopper
	var order []string
	errB, errC := errors.New("b"), errors.New("c")
	s.add(func() error { order = append(order, "a"); return nil })
	s.add(func() error { order = append(order, "b"); return errB })
	s.add(func() error { order = append(order, "c"); return errC })
	if err := s.stopAll(); err != errC {
		t.Fatalf("stopAll = %v, want the first error in stop order (c)", err)
	}
	if want := []string{"c", "b", "a"}; !slices.Equal(order, want) {
		t.Fatalf("stop order %v, want %v", order, want)
	}
	if err := s.stopAll(); err != nil || len(order) != 3 {
		t.Fatalf("second stopAll ran stops again: %v, %v", err, order)
	}
}
