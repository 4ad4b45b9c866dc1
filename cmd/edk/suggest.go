package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/edk-go/edk/internal/suggest"
)

// didYouMean is " Did you mean X?" for the closest candidate, or "".
func didYouMean(word string, candidates []string, quote func(string) string) string {
	if c := suggest.Closest(word, candidates); c != "" {
		return fmt.Sprintf(" Did you mean %s?", quote(c))
	}
	return ""
}

// withoutContext adapts a subcommand that never blocks.
func withoutContext(run func(e *env, args []string) error) func(context.Context, *env, []string) error {
	return func(_ context.Context, e *env, args []string) error { return run(e, args) }
}

// subcommand is one verb of a command group such as 'edk modbus read'.
type subcommand struct {
	name, summary string
	run           func(ctx context.Context, e *env, args []string) error
}

// dispatch runs the subcommand of group named by args[0]. -h lists the
// subcommands and exits 0; a missing or mistyped one is a usage error that
// names them, with the closest as a suggestion.
func dispatch(ctx context.Context, e *env, group string, subs []subcommand, args []string) error {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	if len(args) == 0 {
		return usagef("want a subcommand: %s", subcommandList(group, subs))
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		printSubcommands(e.stdout, group, subs)
		return errHelpShown
	}
	for _, s := range subs {
		if s.name == args[0] {
			err := s.run(ctx, e, args[1:])
			var ue *usageError
			if errors.As(err, &ue) && ue.cmd == "" {
				ue.cmd = group + " " + s.name
			}
			if err != nil && !errors.Is(err, errHelpShown) {
				return &subcommandError{cmd: group + " " + s.name, err: err}
			}
			return err
		}
	}
	hint := didYouMean(args[0], names, func(s string) string { return fmt.Sprintf("'edk %s %s'", group, s) })
	return usagef("unknown subcommand %q.%s Want %s", args[0], hint, subcommandList(group, subs))
}

func subcommandList(group string, subs []subcommand) string {
	parts := make([]string, len(subs))
	for i, s := range subs {
		parts[i] = fmt.Sprintf("'edk %s %s' (%s)", group, s.name, s.summary)
	}
	return strings.Join(parts, " or ")
}

func printSubcommands(w io.Writer, group string, subs []subcommand) {
	fmt.Fprintf(w, "Usage: edk %s <subcommand> [flags]\n\nSubcommands:\n", group)
	for _, s := range subs {
		fmt.Fprintf(w, "  %-8s %s\n", s.name, s.summary)
	}
	fmt.Fprintf(w, "\nRun 'edk %s <subcommand> -h' for its flags.\n", group)
}

// subcommandError names the subcommand an error came from, so that its line
// starts "edk sim fleet:", not "edk sim:".
type subcommandError struct {
	cmd string
	err error
}

func (e *subcommandError) Error() string { return e.err.Error() }
func (e *subcommandError) Unwrap() error { return e.err }
