package logfield

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCut(t *testing.T) {
	if got := Cut("short"); got != "short" {
		t.Fatalf("short value changed: %q", got)
	}
	exact := strings.Repeat("a", MaxLen)
	if got := Cut(exact); got != exact {
		t.Fatalf("a value of exactly MaxLen bytes was cut: %q", got)
	}
	long := strings.Repeat("x", 64<<10)
	got := Cut(long)
	if len(got) > MaxLen+32 || !strings.HasSuffix(got, "…(65536 bytes)") {
		t.Fatalf("64 KiB value cut to %d bytes: %q", len(got), got)
	}
	// A multi-byte rune across the cut is dropped whole, not split.
	multi := strings.Repeat("a", MaxLen-1) + "é" + strings.Repeat("b", 10)
	if got := Cut(multi); !utf8.ValidString(got) || !strings.HasPrefix(got, strings.Repeat("a", MaxLen-1)+"…") {
		t.Fatalf("cut across a rune: %q", got)
	}
}
