// What one flush writes, and the jobs handed to the writer goroutine.

package ingest

import (
	"time"

	"github.com/edk-go/edk/hub/store"
)

// batch is what one flush writes.
type batch struct {
	n         int
	samples   []store.Sample
	logs      []store.LogEntry
	props     map[string]store.Properties // latest per device
	seen      map[string]time.Time        // device → last message time; nil in most group commits
	malformed []store.MalformedMessage
	// waiters are the messages in this batch that someone waits for and
	// that are not in the inbox yet; the next inbox job takes them.
	waiters []message
	// inbox holds, by device ("" for none), the inbox rows of this
	// batch's messages, which its write deletes with the device's rows.
	// The writer fills in the ids when it appends the messages.
	inbox map[string][]*int64
}

func (b *batch) inboxed(deviceID string, id *int64) {
	b.inbox[deviceID] = append(b.inbox[deviceID], id)
}

// job is one thing for the writer goroutine: append inbox (the raw
// messages that are waited for, decoded into b) and release them; then,
// when write is set, write b.
type job struct {
	inbox []message
	b     *batch
	write bool
	// done, when set, is closed once the job is done.
	done chan<- struct{}
}

func newBatch() *batch {
	return &batch{props: make(map[string]store.Properties), inbox: make(map[string][]*int64)}
}
