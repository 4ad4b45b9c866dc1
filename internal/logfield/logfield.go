// Package logfield cuts values that come from the network (client ids, user
// names, topics) to a length that a log line can carry: a client may send
// 64 KiB in each, and the hub logs them on every refusal.
package logfield

import (
	"strconv"
	"unicode/utf8"
)

// MaxLen is how many bytes of a value Cut keeps.
const MaxLen = 128

// Cut returns s when it is at most MaxLen bytes long, else its first MaxLen
// bytes (never splitting a UTF-8 sequence) followed by "…" and the full
// length, so that a reader sees that it was cut and by how much.
func Cut(s string) string {
	if len(s) <= MaxLen {
		return s
	}
	n := MaxLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
