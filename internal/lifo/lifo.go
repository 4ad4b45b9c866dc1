// Package lifo runs the stops of what a program started, last started
// first: each part registers its stop once it is up, and one call stops
// them all, on an error half-way through the start as at exit.
package lifo

// Stack holds stops. The zero value is ready to use; it is not safe for
// concurrent use (one goroutine starts and stops).
type Stack struct{ fns []func() error }

// Push registers the stop of a part that has just started.
func (s *Stack) Push(stop func() error) { s.fns = append(s.fns, stop) }

// Stop runs the stops in reverse order, each once, and returns the first
// error. A second Stop does nothing.
func (s *Stack) Stop() error {
	var first error
	for i := len(s.fns) - 1; i >= 0; i-- {
		if err := s.fns[i](); err != nil && first == nil {
			first = err
		}
	}
	s.fns = nil
	return first
}
