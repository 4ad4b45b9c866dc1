package suggest

import "testing"

func TestClosest(t *testing.T) {
	keys := []string{"register", "table", "type", "length", "bit", "byte_order", "word_order", "scale", "offset", "map", "unavailable", "poll", "unit_id", "unit", "description"}
	for _, tc := range []struct{ word, want string }{
		{"regster", "register"},
		{"registr", "register"},
		{"tyep", "type"}, // a swap is one edit
		{"Scale", "scale"},
		{"descr", "description"}, // a unique prefix
		{"unavailible", "unavailable"},
		{"un", ""}, // too short to guess
		{"units", "unit"},
		{"colour", ""}, // another word
		{"", ""},
		{"byteorder", "byte_order"},
		{"unit_id_x", "unit_id"}, // a known name with more after a separator: the longest
		{"poll-every", "poll"},   // as edk hub --data-dir for --data
		{"polling", ""},          // no separator: another word
		{"map_", "map"},
		{"col_our", ""}, // "col" is no candidate
	} {
		if got := Closest(tc.word, keys); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
	if got := Closest("abc", nil); got != "" {
		t.Errorf("no candidates: %q", got)
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"ab", "ba", 1}, {"été", "ete", 2}} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
