// Package buffer owns a device's outbox on disk: the telemetry, properties,
// logs and command responses it has produced but the broker has not yet
// acknowledged. A message stays in the outbox until Ack; it survives the
// process being killed (SQLite in WAL mode), and the outbox is bounded by
// size and by age, oldest messages dropped first, with counters and a log
// line that says how many.
//
// *Buffer implements device.Buffer: pass it to device.WithBuffer, or use
// `edk run --buffer DIR`.
package buffer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/privatefile"
)

// Defaults for Options.
const (
	DefaultMaxBytes = 64 << 20 // about 3 days of 1 Hz telemetry of 50 values
	DefaultMaxAge   = 7 * 24 * time.Hour
)

// FileName is the database file in the buffer's folder.
const FileName = "edk-buffer.db"

// dropLogEvery bounds how often the drop log line is written during a long
// outage: the counters in Stats are always exact.
const dropLogEvery = time.Minute

// pruneEvery bounds how often the age bound is enforced.
const pruneEvery = time.Second

// ErrTooLarge is returned by Put for a message larger than MaxBytes.
var ErrTooLarge = errors.New("message larger than the whole buffer")

// Message is one buffered message.
type Message = device.Buffered

// Options bound the buffer. Zero values mean the defaults.
type Options struct {
	// MaxBytes bounds the topics and payloads kept (the file on disk is
	// larger by SQLite's overhead: see BENCHMARKS.md for the bytes per
	// message). When a new message does not fit, the oldest are dropped.
	MaxBytes int64
	// MaxAge drops messages older than this; negative keeps every age.
	MaxAge time.Duration
	// Logger receives the drop lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Buffer is an outbox in one folder. It is safe for concurrent use; one
// process at a time may open a folder.
type Buffer struct {
	db   *sql.DB
	path string
	opts Options
	log  *slog.Logger

	mu        sync.Mutex // serialises writes and guards the fields below
	count     int
	bytes     int64
	lastPrune time.Time

	dropped    [2]uint64 // by dropReason, since Open
	unlogged   [2]uint64 // by dropReason, since the last log line
	lastLog    time.Time
	everLogged bool
}

// dropReason indexes Buffer.dropped and Buffer.unlogged.
type dropReason int

const (
	dropFull dropReason = iota // to make room
	dropOld                    // past the age bound
)

const schema = `
CREATE TABLE IF NOT EXISTS messages (
	-- AUTOINCREMENT: an id is never reused, so an Ack for a message that
	-- was already dropped cannot delete a newer one.
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	urgent  INTEGER NOT NULL,
	created INTEGER NOT NULL, -- Unix milliseconds
	qos     INTEGER NOT NULL,
	topic   TEXT    NOT NULL,
	payload BLOB    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS messages_urgent ON messages (id) WHERE urgent = 1;
`

// Open opens (or creates) the buffer in dir, creating dir with mode 0700 if
// needed. Messages left by an earlier process are kept, minus those the
// bounds no longer allow.
func Open(dir string, opts Options) (*Buffer, error) {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("open buffer %s: max bytes %d: want a positive size", dir, opts.MaxBytes)
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open buffer: %w", err)
	}
	path := filepath.Join(dir, FileName)
	// Private: it holds the device's data.
	if err := privatefile.Create(path); err != nil {
		return nil, fmt.Errorf("open buffer: %w", err)
	}
	// WAL with synchronous=NORMAL: a committed Put survives the process
	// being killed; only a power cut can lose the last commits. Exclusive
	// locking keeps a second process (which would send the same messages)
	// out.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(500)&_pragma=journal_mode(WAL)"+
		"&_pragma=synchronous(NORMAL)&_pragma=locking_mode(EXCLUSIVE)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open buffer %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	b := &Buffer{db: db, path: path, opts: opts, log: opts.Logger.With("buffer", path)}
	if err := b.init(); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

func (b *Buffer) init() error {
	ctx := context.Background()
	if _, err := b.db.ExecContext(ctx, schema); err != nil {
		if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "busy") {
			return fmt.Errorf("open buffer %s: another process uses it (one buffer folder per device): %w", b.path, err)
		}
		return fmt.Errorf("open buffer %s: %w", b.path, err)
	}
	if err := b.db.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(length(topic) + length(payload)), 0) FROM messages").Scan(&b.count, &b.bytes); err != nil {
		return fmt.Errorf("open buffer %s: count messages: %w", b.path, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.pruneLocked(ctx, 0, true); err != nil {
		return fmt.Errorf("open buffer %s: %w", b.path, err)
	}
	if b.count > 0 {
		b.log.Info("buffer holds messages from an earlier run; they will be sent when connected", "messages", b.count, "bytes", b.bytes)
	}
	return nil
}

// Close closes the database. Everything Put is already on disk.
func (b *Buffer) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close buffer %s: %w", b.path, err)
	}
	return nil
}

// Path is the database file.
func (b *Buffer) Path() string { return b.path }

func size(m Message) int64 { return int64(len(m.Topic) + len(m.Payload)) }

// Put appends m, first dropping the oldest messages if it would not fit. A
// zero Created is set to now. Once Put returns nil, m is on disk.
func (b *Buffer) Put(ctx context.Context, m Message) error {
	n := size(m)
	if n > b.opts.MaxBytes {
		return fmt.Errorf("buffer %s: message of %d bytes on %s: %w (max %d bytes)", b.path, n, m.Topic, ErrTooLarge, b.opts.MaxBytes)
	}
	if m.Created.IsZero() {
		m.Created = b.opts.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.pruneLocked(ctx, n, false); err != nil {
		return fmt.Errorf("buffer %s: make room: %w", b.path, err)
	}
	if _, err := b.db.ExecContext(ctx, "INSERT INTO messages (urgent, created, qos, topic, payload) VALUES (?, ?, ?, ?, ?)",
		m.Urgent, m.Created.UnixMilli(), m.QoS, m.Topic, m.Payload); err != nil {
		return fmt.Errorf("buffer %s: put message on %s: %w", b.path, m.Topic, err)
	}
	b.count++
	b.bytes += n
	return nil
}

// Peek returns up to max of the oldest messages, urgent ones first, without
// removing them. Messages past the age bound are dropped first.
func (b *Buffer) Peek(ctx context.Context, max int) ([]Message, error) {
	b.mu.Lock()
	err := b.pruneLocked(ctx, 0, false)
	empty := b.count == 0
	b.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("buffer %s: %w", b.path, err)
	}
	if empty || max <= 0 {
		return nil, nil
	}
	out := make([]Message, 0, min(max, 64))
	out, err = b.query(ctx, out, "SELECT id, urgent, created, qos, topic, payload FROM messages WHERE urgent = 1 ORDER BY id LIMIT ?", max)
	if err == nil && len(out) < max {
		out, err = b.query(ctx, out, "SELECT id, urgent, created, qos, topic, payload FROM messages WHERE urgent = 0 ORDER BY id LIMIT ?", max-len(out))
	}
	if err != nil {
		return nil, fmt.Errorf("buffer %s: read messages: %w", b.path, err)
	}
	return out, nil
}

func (b *Buffer) query(ctx context.Context, out []Message, q string, limit int) ([]Message, error) {
	rows, err := b.db.QueryContext(ctx, q, limit)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var m Message
		var created int64
		if err := rows.Scan(&m.ID, &m.Urgent, &created, &m.QoS, &m.Topic, &m.Payload); err != nil {
			return out, err
		}
		m.Created = time.UnixMilli(created)
		out = append(out, m)
	}
	return out, rows.Err()
}

// Ack removes the messages with these ids: the broker has them. Ids that
// are no longer there (dropped meanwhile) are ignored.
func (b *Buffer) Ack(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("buffer %s: ack: %w", b.path, err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, "DELETE FROM messages WHERE id = ? RETURNING length(topic) + length(payload)")
	if err != nil {
		return fmt.Errorf("buffer %s: ack: %w", b.path, err)
	}
	defer stmt.Close()
	var count int
	var bytes int64
	for _, id := range ids {
		var n int64
		switch err := stmt.QueryRowContext(ctx, id).Scan(&n); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("buffer %s: ack message %d: %w", b.path, id, err)
		default:
			count++
			bytes += n
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("buffer %s: ack: %w", b.path, err)
	}
	b.count -= count
	b.bytes -= bytes
	return nil
}

// Stats returns the buffer's counters.
func (b *Buffer) Stats() device.BufferStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return device.BufferStats{
		Messages:    b.count,
		Bytes:       b.bytes,
		DroppedFull: b.dropped[dropFull],
		DroppedOld:  b.dropped[dropOld],
	}
}

// pruneLocked drops messages past the age bound (at most once per
// pruneEvery unless force) and then the oldest until room more bytes fit.
// Non-urgent messages go first: a command response is small and someone
// is waiting for it.
func (b *Buffer) pruneLocked(ctx context.Context, room int64, force bool) error {
	now := b.opts.Now()
	if b.opts.MaxAge > 0 && b.count > 0 && (force || now.Sub(b.lastPrune) >= pruneEvery) {
		b.lastPrune = now
		// ids grow with time, so the old messages are a prefix: delete in
		// chunks from the front instead of scanning the whole table.
		cutoff := now.Add(-b.opts.MaxAge).UnixMilli()
		for {
			n, bytes, err := b.delete(ctx, deleteOld, deleteChunk, cutoff)
			if err != nil {
				return fmt.Errorf("drop messages older than %s: %w", b.opts.MaxAge, err)
			}
			b.drop(dropOld, n, bytes)
			if n < deleteChunk {
				break
			}
		}
	}
	// One at a time, so that no more is dropped than the new message needs.
	for b.count > 0 && b.bytes+room > b.opts.MaxBytes {
		n, bytes, err := b.delete(ctx, deleteOldestNotUrgent)
		if err == nil && n == 0 {
			n, bytes, err = b.delete(ctx, deleteOldest)
		}
		if err != nil {
			return fmt.Errorf("drop the oldest messages: %w", err)
		}
		b.drop(dropFull, n, bytes)
		if n == 0 {
			break
		}
	}
	return nil
}

const deleteChunk = 256

// The deletes that enforce the bounds. ids grow with time, so the oldest
// messages come first by id.
const (
	// deleteOld deletes, among the oldest LIMIT ?, those created before ?.
	deleteOld = `DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?) AND created < ?
		RETURNING length(topic) + length(payload)`
	deleteOldestNotUrgent = `DELETE FROM messages WHERE id = (SELECT min(id) FROM messages WHERE urgent = 0)
		RETURNING length(topic) + length(payload)`
	deleteOldest = `DELETE FROM messages WHERE id = (SELECT min(id) FROM messages)
		RETURNING length(topic) + length(payload)`
)

// delete runs one of the deletes above and returns how many messages it
// deleted and their bytes.
func (b *Buffer) delete(ctx context.Context, q string, args ...any) (n int, bytes int64, err error) {
	rows, err := b.db.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			return n, bytes, err
		}
		n++
		bytes += s
	}
	return n, bytes, rows.Err()
}

// drop accounts for n messages of bytes dropped for reason and logs, at
// most once per dropLogEvery, how many were dropped since the last line.
// The caller holds b.mu.
func (b *Buffer) drop(reason dropReason, n int, bytes int64) {
	if n == 0 {
		return
	}
	b.count -= n
	b.bytes -= bytes
	b.dropped[reason] += uint64(n)
	b.unlogged[reason] += uint64(n)
	now := b.opts.Now()
	if b.everLogged && now.Sub(b.lastLog) < dropLogEvery {
		return
	}
	b.everLogged = true
	b.lastLog = now
	b.log.Warn("buffer bound reached: dropped the oldest messages",
		"dropped_full", b.unlogged[dropFull], "dropped_old", b.unlogged[dropOld],
		"max_bytes", b.opts.MaxBytes, "max_age", b.opts.MaxAge,
		"hint", "raise --buffer-max-size / --buffer-max-age, or bring the broker back")
	b.unlogged = [2]uint64{}
}
