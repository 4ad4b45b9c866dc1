package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edk-go/edk/controller"
)

// demoWidth is the terminal width the demo's lines fit in: a plain 80
// column terminal shows them without wrapping in the middle of a word.
const demoWidth = 80

// demoIDLength is how much of a 36-character execution id the demo shows:
// enough to tell the commands of one demo apart.
const demoIDLength = 8

// formatDemoEvent is controller.FormatEvent made to fit demoWidth: the
// demo watches one channel, so the channel is left out, ids are cut, and a
// long line wraps at a space with an indent. It ends with a newline.
func formatDemoEvent(ev controller.Event) string {
	ev.Topic.ChannelID = ""
	if ev.Request != nil {
		r := *ev.Request
		r.ID = shortID(r.ID)
		ev.Request = &r
	}
	if ev.Response != nil {
		r := *ev.Response
		r.ID = shortID(r.ID)
		ev.Response = &r
	}
	return wrapLine("  "+controller.FormatEvent(ev), demoWidth, strings.Repeat(" ", 11))
}

func shortID(id string) string {
	if len(id) > demoIDLength {
		return id[:demoIDLength]
	}
	return id
}

// wrapLine breaks s at spaces so that no line is wider than width runes
// (a single word longer than that stays whole), indenting the lines after
// the first. Runs of spaces inside a line (aligned columns) are kept. It
// ends with a newline.
func wrapLine(s string, width int, indent string) string {
	var b strings.Builder
	for utf8.RuneCountInString(s) > width {
		cut, runes := -1, 0
		for i, r := range s {
			if runes > width {
				break
			}
			// A space in the leading indent is no place to break.
			if r == ' ' && strings.TrimLeft(s[:i], " ") != "" {
				cut = i
			}
			runes++
		}
		if cut < 0 {
			break
		}
		b.WriteString(strings.TrimRight(s[:cut], " "))
		b.WriteByte('\n')
		s = indent + strings.TrimLeft(s[cut:], " ")
	}
	b.WriteString(s)
	b.WriteByte('\n')
	return b.String()
}

// shownResponses records the ids whose final response the demo's watch has
// printed, so that the script can wait for the slower of its two paths.
type shownResponses struct {
	mu   sync.Mutex
	ids  map[string]bool
	wake chan struct{}
}

// maxShownIDs bounds the ids a long demo remembers.
const maxShownIDs = 1024

func newShownResponses() *shownResponses {
	return &shownResponses{ids: map[string]bool{}, wake: make(chan struct{})}
}

func (s *shownResponses) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) >= maxShownIDs { // a long demo: forget the old ones
		s.ids = map[string]bool{}
	}
	s.ids[id] = true
	close(s.wake)
	s.wake = make(chan struct{})
}

// wait returns once id has been shown, ctx is done, or patience runs out:
// a command refused before it reached the device has no response to show.
func (s *shownResponses) wait(ctx context.Context, id string, patience time.Duration) bool {
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		s.mu.Lock()
		seen, wake := s.ids[id], s.wake
		s.mu.Unlock()
		if seen {
			return true
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return false
		case <-timer.C:
			return false
		}
	}
}

// selfCommand is how the person runs this edk, for hints they can paste:
// "go run ./cmd/edk" under go run, "edk" when the binary on PATH is this
// one, else the path they started it by.
func selfCommand() string { return selfCommandFor(os.Args[0], exec.LookPath) }

func selfCommandFor(arg0 string, lookPath func(string) (string, error)) string {
	if strings.Contains(filepath.ToSlash(arg0), "/go-build") {
		return "go run ./cmd/edk"
	}
	if !strings.ContainsRune(arg0, filepath.Separator) {
		return arg0 // found on PATH, so it runs again by its name
	}
	if onPath, err := lookPath(filepath.Base(arg0)); err == nil {
		if sameFile(onPath, arg0) {
			return filepath.Base(arg0)
		}
	}
	return arg0
}

func sameFile(a, b string) bool {
	ia, errA := os.Stat(a)
	ib, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(ia, ib)
}
