// Package store owns the hub's persistent state in SQLite: schema, migrations,
// and every read/write the hub's ingest and HTTP API need; nothing else talks
// SQL.
//
// The database runs in WAL mode with foreign keys on and synchronous=NORMAL:
// a write that returned nil survives the process being killed (the hub
// acknowledges a device's message only once it is committed, and the
// device then forgets it); a power cut may lose the last commits before
// the next WAL sync. FULL would close that gap at an fsync per commit,
// which quadrupled execute_command's latency here (0.48 → 1.9 ms).
// SQLite allows one writer at a time, so a Store keeps two pools: a single
// writer connection (every write transaction queues for it, so writers never
// see SQLITE_BUSY from each other) and a pool of query-only reader
// connections, which WAL lets run alongside the writer.
//
// Times are stored as Unix milliseconds and come back in UTC; anything finer
// than a millisecond is dropped.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/edk-go/edk/internal/privatefile"
)

// Errors a caller can test with errors.Is. Every returned error wraps one of
// these when it is about the data rather than about SQLite itself.
var (
	// ErrNotFound means the device, execution or other record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique value (slug, hardware id, MQTT username,
	// certificate fingerprint, id) is taken, or a finished execution was
	// asked to change.
	ErrConflict = errors.New("conflict")
	// ErrInvalid means the caller passed a value the store refuses (empty
	// required field, reserved attribute name, invalid JSON).
	ErrInvalid = errors.New("invalid")
	// ErrUnauthorized means the MQTT username or password is wrong. Which
	// of the two is never said.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrSchemaTooNew means the database was written by a newer edk whose
	// schema this code does not know.
	ErrSchemaTooNew = errors.New("database schema is newer than this edk")
	// ErrCorrupt is returned by Open when SQLite's integrity check
	// (PRAGMA quick_check) finds the file damaged.
	ErrCorrupt = errors.New("database file is damaged")
)

// Defaults for the zero fields of Options.
const (
	DefaultBusyTimeout        = 5 * time.Second
	DefaultPasswordIterations = 100_000
)

// DefaultMaxReaders is the size of the reader pool when Options.MaxReaders is 0.
var DefaultMaxReaders = max(4, runtime.GOMAXPROCS(0))

// Options configures Open. The zero value is ready to use.
type Options struct {
	// BusyTimeout is how long a connection waits for a lock held by another
	// process (another hub on the same file) before failing.
	// Default DefaultBusyTimeout.
	BusyTimeout time.Duration
	// MaxReaders bounds the reader pool. Default DefaultMaxReaders.
	MaxReaders int
	// PasswordIterations is the PBKDF2-SHA256 iteration count for new
	// password hashes; existing hashes keep the count they were made with.
	// Default DefaultPasswordIterations.
	PasswordIterations int
	// Now returns the current time for created_at/updated_at. Default time.Now.
	Now func() time.Time
}

// Store is the hub's database. It is safe for concurrent use.
type Store struct {
	w    *sql.DB // one connection: all writes
	r    *sql.DB // query-only connections (the same pool as w for ":memory:")
	opts Options
	// writer is held for a write transaction, bulk by a bulk write
	// waiting for writer (writeBulk). Go's runtime serves the senders
	// blocked on a channel in order, so a write waits for the one
	// running and at most one bulk write, however many are queued.
	writer, bulk chan struct{}
	// reads holds the statements readStmt prepared, by query.
	reads sync.Map
	// dkeys caches device id → telemetry key (see deviceKeys).
	dkeys sync.Map
	// checkpointer moves the WAL into the database file beside the writer
	// (nil for ":memory:"); Close stops it through stopCheckpoints and
	// waits for checkpointsDone.
	checkpointer                     *sql.DB
	stopCheckpoints, checkpointsDone chan struct{}
	closeCheckpoints                 sync.Once
}

// checkpointEvery is how often the checkpointer copies what the WAL holds
// into the database file. SQLite's own checkpoint, run inside the commit
// that finds the WAL over 1 000 pages, was 10% of the hub's CPU under a
// fleet of 10 000 devices, all of it on the one writer that every
// acknowledgement waits for (BENCHMARKS.md, "Hub: a fleet of devices").
// A PASSIVE checkpoint on a connection of its own runs beside the writer
// and waits for nobody. walAutoCheckpoint keeps SQLite's own as a
// fallback, at ten times its default, should the checkpointer fall behind.
const (
	checkpointEvery   = time.Second
	walAutoCheckpoint = 10_000
)

// Open opens (creating if needed) the database at path and brings its schema
// up to date. path ":memory:" gives a private in-memory database on a single
// connection, for tests. Open fails with ErrSchemaTooNew when the file was
// migrated by a newer edk.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("store: open: empty path: %w", ErrInvalid)
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store: open %q: path may not contain '?' or '#': %w", path, ErrInvalid)
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	if opts.MaxReaders <= 0 {
		opts.MaxReaders = DefaultMaxReaders
	}
	if opts.PasswordIterations <= 0 {
		opts.PasswordIterations = DefaultPasswordIterations
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}

	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", opts.BusyTimeout.Milliseconds())
	s := &Store{opts: opts, writer: make(chan struct{}, 1), bulk: make(chan struct{}, 1)}
	var err error
	if path == ":memory:" {
		s.w, err = sql.Open("sqlite", path+"?"+common+"&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("store: open: %w", err)
		}
		oneConnection(s.w)
		s.r = s.w
	} else {
		// SQLite creates the file with the umask's mode (often 0644), and its
		// WAL files with the file's mode: create it private first. It holds
		// password hashes and every device's data.
		if err := privatefile.Create(path); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		s.w, err = sql.Open("sqlite", path+"?"+common+
			"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"+
			fmt.Sprintf("&_pragma=wal_autocheckpoint(%d)", walAutoCheckpoint))
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		oneConnection(s.w)
	}
	if path != ":memory:" {
		if err := s.quickCheck(ctx, path); err != nil {
			s.w.Close()
			return nil, err
		}
	}
	if err := s.migrate(ctx); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if s.r == nil {
		// Readers open only after the writer has switched the file to WAL.
		s.r, err = sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
		if err != nil {
			s.w.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		s.r.SetMaxOpenConns(opts.MaxReaders)
		s.r.SetMaxIdleConns(opts.MaxReaders)
		if err := s.r.PingContext(ctx); err != nil {
			s.r.Close()
			s.w.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		if err := s.startCheckpoints(ctx, path+"?"+common); err != nil {
			s.r.Close()
			s.w.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
	}
	return s, nil
}

// oneConnection keeps db to one connection, open for good: the writer's
// transactions and the checkpointer's runs each need exactly one.
func oneConnection(db *sql.DB) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
}

// startCheckpoints opens the checkpointer's connection and runs it every
// checkpointEvery until Close.
func (s *Store) startCheckpoints(ctx context.Context, dsn string) error {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	oneConnection(db)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return err
	}
	s.checkpointer = db
	s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.checkpointsDone)
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stopCheckpoints:
				return
			case <-t.C:
				// A failure (the disk is full, say) leaves the frames in the
				// WAL, which the next run, or SQLite's fallback, copies.
				_, _ = db.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			}
		}
	}()
	return nil
}

// quickCheck runs PRAGMA quick_check on the file, which reads every page
// (so the start takes longer the bigger the file), so that a damaged file is refused at start with
// a way out, rather than accepted and then failing device by device (a
// broken devices page refuses every login). It reports at most
// maxCorruptLines of SQLite's findings.
func (s *Store) quickCheck(ctx context.Context, path string) error {
	const maxCorruptLines = 3
	rows, err := s.w.QueryContext(ctx, "PRAGMA quick_check(100)")
	if err != nil {
		if isCorrupt(err) {
			return corruptError(path, []string{err.Error()})
		}
		return fmt.Errorf("store: open %s: integrity check: %w", path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("store: open %s: integrity check: %w", path, err)
		}
		if line != "ok" && !strings.HasPrefix(line, "*** in database") {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		if isCorrupt(err) {
			return corruptError(path, append(problems, err.Error()))
		}
		return fmt.Errorf("store: open %s: integrity check: %w", path, err)
	}
	if len(problems) > 0 {
		return corruptError(path, problems[:min(len(problems), maxCorruptLines)])
	}
	return nil
}

// isCorrupt reports SQLite's SQLITE_CORRUPT and SQLITE_NOTADB, which a
// damaged file can give before quick_check reports anything.
func isCorrupt(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "malformed") || strings.Contains(msg, "not a database") || strings.Contains(msg, "SQLITE_CORRUPT")
}

func corruptError(path string, problems []string) error {
	return fmt.Errorf("store: open %s: %w (SQLite's quick_check: %s); the hub does not start on a damaged database: "+
		"stop every hub using it, move %s and its -wal and -shm files aside, and restore them from a backup "+
		"(or salvage what is left with: sqlite3 %s .recover | sqlite3 recovered.db)",
		path, ErrCorrupt, strings.Join(problems, "; "), path, path)
}

// Close closes both pools and returns the first error. In WAL mode the last
// connection to close checkpoints the log into the main file.
func (s *Store) Close() error {
	if s.checkpointer != nil {
		s.closeCheckpoints.Do(func() {
			close(s.stopCheckpoints)
			<-s.checkpointsDone
			_ = s.checkpointer.Close()
		})
	}
	s.reads.Range(func(_, st any) bool {
		_ = st.(*sql.Stmt).Close()
		return true
	})
	var err error
	if s.r != s.w {
		err = s.r.Close()
	}
	if werr := s.w.Close(); err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// readStmt returns query prepared on the readers, once: for the look-ups
// every MQTT connect makes (credentials, then the device of a hardware
// id), whose SQL a reconnect storm of 10 000 devices parsed 20 000 times.
// Only fixed queries come here, so the set stays small.
func (s *Store) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.reads.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.r.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.reads.LoadOrStore(query, st); loaded {
		_ = st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// SchemaVersion returns the schema version of the open database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// write runs fn in one write transaction (BEGIN IMMEDIATE on the writer
// connection), committing when fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writer }()
	return s.tx(ctx, fn)
}

// writeBulk is write for the writes that come in a steady stream or delete
// much at once (ingest's batches, expiry): they queue one at a time behind
// the others, so that a write someone waits for (an execution, an inbox
// commit a device's acknowledgement waits for) finds at most one bulk
// transaction ahead of it, not every ingest transaction queued meanwhile
// (BENCHMARKS.md, "Hub: execute_command and ingest").
func (s *Store) writeBulk(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case s.bulk <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.bulk }()
	return s.write(ctx, fn)
}

func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// now returns the store's clock in milliseconds.
func (s *Store) now() time.Time { return s.opts.Now().UTC().Truncate(time.Millisecond) }

// ms turns a time into stored milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS turns stored milliseconds into a UTC time.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// fromNullMS maps NULL to the zero time.
func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

// newID returns a random RFC 4122 version 4 UUID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// uniqueConflict turns a UNIQUE or PRIMARY KEY violation into an ErrConflict
// naming the column; names maps "table.column" to a readable field name. Other
// errors come back unchanged.
func uniqueConflict(err error, names map[string]string) error {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
	default:
		return err
	}
	msg := err.Error()
	for col, name := range names {
		if strings.Contains(msg, col) {
			return fmt.Errorf("%s is taken: %w", name, ErrConflict)
		}
	}
	return fmt.Errorf("a unique value is taken: %w", ErrConflict)
}

// isForeignKey reports whether err is a foreign key violation.
func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
