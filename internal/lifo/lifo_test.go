package lifo_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/edk-go/edk/internal/lifo"
)

func TestStopRunsLastFirstAndReturnsTheFirstError(t *testing.T) {
	var s lifo.Stack
	var order []string
	errB, errC := errors.New("b"), errors.New("c")
	s.Push(func() error { order = append(order, "a"); return nil })
	s.Push(func() error { order = append(order, "b"); return errB })
	s.Push(func() error { order = append(order, "c"); return errC })
	if err := s.Stop(); err != errC {
		t.Fatalf("Stop = %v, want the first error in stop order (c)", err)
	}
	if want := []string{"c", "b", "a"}; !slices.Equal(order, want) {
		t.Fatalf("stop order %v, want %v", order, want)
	}
	if err := s.Stop(); err != nil || len(order) != 3 {
		t.Fatalf("a second Stop ran stops again: %v, %v", err, order)
	}
}
