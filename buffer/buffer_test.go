package buffer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edk-go/edk/buffer"
	"github.com/edk-go/edk/internal/testutil"
)

func open(t *testing.T, dir string, opts buffer.Options) *buffer.Buffer {
	t.Helper()
	b, err := buffer.Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func put(t *testing.T, b *buffer.Buffer, topic, payload string, urgent bool) {
	t.Helper()
	if err := b.Put(context.Background(), buffer.Message{Topic: topic, QoS: 1, Payload: []byte(payload), Urgent: urgent}); err != nil {
		t.Fatalf("put %s: %v", payload, err)
	}
}

func payloads(t *testing.T, b *buffer.Buffer, max int) []string {
	t.Helper()
	msgs, err := b.Peek(context.Background(), max)
	if err != nil {
		t.Fatalf("peek: %v", err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Payload))
	}
	return out
}

func TestOrderUrgentFirstAndAck(t *testing.T) {
	b := open(t, t.TempDir(), buffer.Options{})
	put(t, b, "t", "1", false)
	put(t, b, "t", "2", false)
	put(t, b, "r", "resp-a", true)
	put(t, b, "t", "3", false)
	put(t, b, "r", "resp-b", true)

	if got, want := strings.Join(payloads(t, b, 10), ","), "resp-a,resp-b,1,2,3"; got != want {
		t.Fatalf("peek order = %s, want %s", got, want)
	}
	msgs, _ := b.Peek(context.Background(), 3)
	if err := b.Ack(context.Background(), []int64{msgs[0].ID, msgs[2].ID}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(payloads(t, b, 10), ","), "resp-b,2,3"; got != want {
		t.Fatalf("after ack = %s, want %s", got, want)
	}
	// Acking an id twice, or one that never existed, is harmless.
	if err := b.Ack(context.Background(), []int64{msgs[0].ID, 9999}); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Messages != 3 || st.Bytes != int64(len("r")+len("resp-b")+2*len("t")+2) {
		t.Fatalf("stats = %+v", st)
	}
}

func TestSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	b, err := buffer.Open(dir, buffer.Options{MaxAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	created := time.UnixMilli(1_700_000_000_123)
	if err := b.Put(context.Background(), buffer.Message{Topic: "t", QoS: 1, Payload: []byte(`{"timestamp":1}`), Created: created}); err != nil {
		t.Fatal(err)
	}
	put(t, b, "t", "2", false)
	b.Close()

	b = open(t, dir, buffer.Options{MaxAge: -1})
	msgs, err := b.Peek(context.Background(), 10)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("after reopen: %d messages, %v", len(msgs), err)
	}
	if !msgs[0].Created.Equal(created) || string(msgs[0].Payload) != `{"timestamp":1}` || msgs[0].QoS != 1 || msgs[0].Topic != "t" {
		t.Fatalf("message changed across reopen: %+v", msgs[0])
	}
	if st := b.Stats(); st.Messages != 2 {
		t.Fatalf("stats after reopen = %+v", st)
	}
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir, buffer.Options{})
	put(t, b, "t", "1", false)
	_, err := buffer.Open(dir, buffer.Options{})
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second open: %v, want an error saying another process uses it", err)
	}
}

func TestSizeBoundDropsOldestAndLogs(t *testing.T) {
	var logBuf testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	// Each message is 1 + 9 = 10 bytes; 100 bytes hold 10.
	b := open(t, t.TempDir(), buffer.Options{MaxBytes: 100, Logger: log})
	put(t, b, "r", "urgent-01", true)
	for i := range 30 {
		put(t, b, "t", fmt.Sprintf("msg-%05d", i), false)
	}
	got := payloads(t, b, 100)
	if len(got) != 10 || got[0] != "urgent-01" || got[9] != "msg-00029" || got[1] != "msg-00021" {
		t.Fatalf("kept %v; want the urgent one and the 9 newest", got)
	}
	st := b.Stats()
	if st.DroppedFull != 21 || st.Messages != 10 || st.Bytes != 100 {
		t.Fatalf("stats = %+v, want 21 dropped, 10 kept in 100 bytes", st)
	}
	if !strings.Contains(logBuf.String(), "dropped the oldest messages") {
		t.Fatalf("no drop log line:\n%s", logBuf.String())
	}
	if n := strings.Count(logBuf.String(), "dropped the oldest"); n != 1 {
		t.Fatalf("%d drop lines within a minute, want 1:\n%s", n, logBuf.String())
	}

	err := b.Put(context.Background(), buffer.Message{Topic: "t", Payload: bytes.Repeat([]byte("x"), 200)})
	if !errors.Is(err, buffer.ErrTooLarge) {
		t.Fatalf("put of 200 bytes into 100: %v, want ErrTooLarge", err)
	}
	if st := b.Stats(); st.Messages != 10 {
		t.Fatalf("a refused message changed the buffer: %+v", st)
	}
}

func TestAgeBound(t *testing.T) {
	clk := testutil.NewClock()
	clock, advance := clk.Now, clk.Add

	dir := t.TempDir()
	b, err := buffer.Open(dir, buffer.Options{MaxAge: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		put(t, b, "t", "old-"+strconv.Itoa(i), false)
	}
	advance(30 * time.Minute)
	put(t, b, "t", "new", false)
	advance(31 * time.Minute)
	if got := strings.Join(payloads(t, b, 10), ","); got != "new" {
		t.Fatalf("after an hour and a minute: %s, want only new", got)
	}
	if st := b.Stats(); st.DroppedOld != 5 || st.Messages != 1 {
		t.Fatalf("stats = %+v", st)
	}
	b.Close()

	// The bound is enforced again when a later process opens the buffer.
	advance(time.Hour)
	b = open(t, dir, buffer.Options{MaxAge: time.Hour, Now: clock})
	if st := b.Stats(); st.Messages != 0 || st.DroppedOld != 1 {
		t.Fatalf("stats after reopen = %+v", st)
	}
}

func TestConcurrentPutPeekAck(t *testing.T) {
	b := open(t, t.TempDir(), buffer.Options{})
	const writers, each = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := b.Put(context.Background(), buffer.Message{Topic: "t", Payload: []byte(fmt.Sprintf("%d-%d", w, i))}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := map[string]bool{}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		msgs, err := b.Peek(context.Background(), 50)
		if err != nil {
			t.Fatal(err)
		}
		if finished && len(msgs) == 0 {
			break
		}
		var ids []int64
		for _, m := range msgs {
			if seen[string(m.Payload)] {
				t.Fatalf("%s delivered twice", m.Payload)
			}
			seen[string(m.Payload)] = true
			ids = append(ids, m.ID)
		}
		if err := b.Ack(context.Background(), ids); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != writers*each {
		t.Fatalf("saw %d messages, want %d", len(seen), writers*each)
	}
	if st := b.Stats(); st.Messages != 0 || st.Bytes != 0 {
		t.Fatalf("stats after draining = %+v", st)
	}
}

// TestKilledProcessKeepsMessages puts messages from a child process that is
// killed with SIGKILL, and checks that every Put that returned is there.
func TestKilledProcessKeepsMessages(t *testing.T) {
	if dir := os.Getenv("EDK_BUFFER_CHILD_DIR"); dir != "" {
		b, err := buffer.Open(dir, buffer.Options{})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			if err := b.Put(context.Background(), buffer.Message{Topic: "t", Payload: []byte(strconv.Itoa(i))}); err != nil {
				fmt.Println("put:", err)
				os.Exit(1)
			}
			fmt.Println(i) // reported only after Put returned
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledProcessKeepsMessages$")
	cmd.Env = append(os.Environ(), "EDK_BUFFER_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last := -1
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 4096)
	for last < 500 {
		n, err := out.Read(chunk)
		if err != nil {
			t.Fatalf("child stopped early: %v (output %q)", err, buf)
		}
		buf = append(buf, chunk[:n]...)
		lines := strings.Split(string(buf), "\n")
		for _, l := range lines[:len(lines)-1] {
			if v, err := strconv.Atoi(l); err == nil {
				last = v
			}
		}
		buf = []byte(lines[len(lines)-1])
	}
	_ = cmd.Process.Kill() // SIGKILL: no deferred code, no Close
	_ = cmd.Wait()

	b := open(t, dir, buffer.Options{})
	msgs, err := b.Peek(context.Background(), 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < last+1 {
		t.Fatalf("after SIGKILL the buffer holds %d messages; the child had put %d", len(msgs), last+1)
	}
	for i, m := range msgs {
		if string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: order or content lost", i, m.Payload)
		}
	}
}

func TestFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir, buffer.Options{})
	put(t, b, "t", "1", false)
	fi, err := os.Stat(b.Path())
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("%s has mode %o, want 600: it holds the device's data", b.Path(), mode)
	}
}
