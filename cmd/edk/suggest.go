package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// closest returns the candidate nearest to word by edit distance, or "" when
// none is near enough to be what the user meant: a typo, not another word.
func closest(word string, candidates []string) string {
	lw := strings.ToLower(word)
	// A unique prefix is what was meant: "blue" is "blueprint".
	if len(lw) >= 3 {
		var prefixed []string
		for _, c := range candidates {
			if strings.HasPrefix(strings.ToLower(c), lw) {
				prefixed = append(prefixed, c)
			}
		}
		if len(prefixed) == 1 {
			return prefixed[0]
		}
	}
	best, bestDist := "", 0
	for _, c := range candidates {
		d := editDistance(lw, strings.ToLower(c))
		if best == "" || d < bestDist {
			best, bestDist = c, d
		}
	}
	// One edit in three characters, at least one and at most three: "hbu" is
	// "hub", "wtach" is "watch", "modbus" is not "demo".
	if best == "" || bestDist > max(1, min(3, len(lw)/3)) {
		return ""
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment): a swap of two neighbours is one edit, as typos usually are.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// didYouMean is " Did you mean X?" for the closest candidate, or "".
func didYouMean(word string, candidates []string, quote func(string) string) string {
	if c := closest(word, candidates); c != "" {
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
