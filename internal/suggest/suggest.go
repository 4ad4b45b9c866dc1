// Package suggest finds what a mistyped name was meant to be, for the "did
// you mean" of error messages: register map and manifest keys, and edk's
// commands, subcommands and flags.
package suggest

import "strings"

// Closest returns the candidate nearest to word, or "" when none is near
// enough to be a typo of it rather than another word: a unique prefix of
// three letters or more ("telem" is "telemetry"), or at most one edit in
// three letters, at least one and at most three ("regster" is "register",
// "unit" is not "min"), or else the longest candidate that word extends
// past a separator ("data-dir" is "data"). Case does not count.
func Closest(word string, candidates []string) string {
	lw := strings.ToLower(word)
	if lw == "" {
		return ""
	}
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
		d := Distance(lw, strings.ToLower(c))
		if best == "" || d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" && bestDist <= max(1, min(3, len(lw)/3)) {
		return best
	}
	return extended(lw, candidates)
}

// extended returns the longest candidate of three letters or more that lw
// starts with, followed by a separator: a name with a word too many, as a
// flag --data-dir for --data.
func extended(lw string, candidates []string) string {
	best := ""
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if len(lc) < 3 || len(lc) <= len(best) || !strings.HasPrefix(lw, lc) || len(lw) == len(lc) {
			continue
		}
		if strings.ContainsRune("-_.", rune(lw[len(lc)])) {
			best = c
		}
	}
	return best
}

// Distance is the Damerau–Levenshtein distance of a and b (optimal string
// alignment): a swap of two neighbours is one edit, as typos usually are.
// Words longer than 64 runes are far from everything.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 99
	}
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
