package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema, one step per entry. Entry i takes the database
// from version i to version i+1 (kept in PRAGMA user_version) and runs in its
// own transaction. Append only: never edit a step that has shipped.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE devices (
	id               TEXT    NOT NULL PRIMARY KEY,
	name             TEXT    NOT NULL,
	slug             TEXT    NOT NULL UNIQUE,
	hardware_id      TEXT    NOT NULL UNIQUE,
	channel_id       TEXT    NOT NULL,
	blueprint_id     TEXT    NOT NULL DEFAULT '',
	manifest         BLOB,
	mqtt_username    TEXT    UNIQUE,
	password_hash    TEXT,
	cert_fingerprint TEXT    UNIQUE,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE telemetry (
	device_id TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	attribute TEXT    NOT NULL,
	ts        INTEGER NOT NULL,
	value     TEXT    NOT NULL,
	PRIMARY KEY (device_id, attribute, ts)
) STRICT, WITHOUT ROWID;

CREATE TABLE telemetry_latest (
	device_id TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	attribute TEXT    NOT NULL,
	ts        INTEGER NOT NULL,
	value     TEXT    NOT NULL,
	PRIMARY KEY (device_id, attribute)
) STRICT, WITHOUT ROWID;

CREATE TABLE properties (
	device_id TEXT    NOT NULL PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	ts        INTEGER NOT NULL,
	data      TEXT    NOT NULL
) STRICT;

CREATE TABLE connectivity (
	device_id TEXT    NOT NULL PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	online    INTEGER NOT NULL,
	changed_at INTEGER NOT NULL,
	last_seen INTEGER
) STRICT;

CREATE TABLE logs (
	id        INTEGER PRIMARY KEY,
	device_id TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	ts        INTEGER NOT NULL,
	severity  TEXT    NOT NULL,
	message   TEXT    NOT NULL,
	persist   INTEGER NOT NULL
) STRICT;
CREATE INDEX logs_device_ts ON logs (device_id, ts);
CREATE INDEX logs_ts ON logs (ts);

CREATE TABLE executions (
	seq           INTEGER PRIMARY KEY,
	id            TEXT    NOT NULL UNIQUE,
	device_id     TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	state         TEXT    NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	name          TEXT    NOT NULL,
	arguments     TEXT,
	manifest_name TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX executions_device ON executions (device_id, seq);

CREATE TABLE execution_responses (
	execution_id TEXT    NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
	n            INTEGER NOT NULL,
	state        TEXT    NOT NULL,
	payload      TEXT,
	received_at  INTEGER NOT NULL,
	PRIMARY KEY (execution_id, n)
) STRICT, WITHOUT ROWID;

CREATE TABLE malformed (
	device_id TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	kind      TEXT    NOT NULL,
	count     INTEGER NOT NULL,
	last_at   INTEGER NOT NULL,
	PRIMARY KEY (device_id, kind)
) STRICT, WITHOUT ROWID;
`,
	// 2: the ingest inbox: device messages the hub acknowledged and has
	// not decoded into the tables above yet (hub/ingest). Appended in
	// rowid order, deleted in the transaction that writes what they hold.
	`
CREATE TABLE inbox (
	id          INTEGER PRIMARY KEY,
	topic       TEXT    NOT NULL,
	payload     BLOB    NOT NULL,
	received_at INTEGER NOT NULL
) STRICT;
`,
	// 3: what Enapter's clients expect of a "local Enapter": uploaded
	// blueprints (the zip as sent, its manifest as JSON), the hub's one
	// site (a random UUID made once, so that it stays the same across
	// restarts), and each execution's deadline, so that an execution
	// nobody waits for any more still ends (hub/exec sweeps them).
	`
CREATE TABLE blueprints (
	id         TEXT    NOT NULL PRIMARY KEY,
	created_at INTEGER NOT NULL,
	zip        BLOB    NOT NULL,
	manifest   TEXT    NOT NULL
) STRICT;

CREATE TABLE sites (
	id         TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	timezone   TEXT    NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
INSERT INTO sites (id, name, timezone, created_at) SELECT
	lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
	substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) ||
	substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
	'Local site', 'UTC', CAST(unixepoch('subsec') * 1000 AS INTEGER);

ALTER TABLE executions ADD COLUMN deadline_at INTEGER;
CREATE INDEX executions_unfinished ON executions (state) WHERE state IN ('NEW', 'IN_PROGRESS');
`,
	// 4: telemetry as a row per message instead of a row per value, keyed
	// by a small integer per device instead of its UUID text: a 10-value
	// message was 10 B-tree inserts of ~60-byte keys plus 10 upserts of
	// the latest values, and ingest spent most of the hub's CPU there
	// (BENCHMARKS.md, "Hub: a fleet of devices"). A message's values are
	// one JSON object, attribute → value as the device sent it (alerts
	// under "alerts"), n the number of its members. telemetry_latest is
	// one row per device: attribute → [ts, value] of the latest value of
	// each attribute ever sent. device_keys gives each device its key;
	// its rows are made as a device's first telemetry is written.
	// The old rows are converted here, values kept verbatim.
	`
CREATE TABLE device_keys (
	dkey      INTEGER PRIMARY KEY,
	device_id TEXT    NOT NULL UNIQUE REFERENCES devices (id) ON DELETE CASCADE
) STRICT;

CREATE TABLE telemetry_messages (
	dkey INTEGER NOT NULL REFERENCES device_keys (dkey) ON DELETE CASCADE,
	ts   INTEGER NOT NULL,
	n    INTEGER NOT NULL,
	data TEXT    NOT NULL,
	PRIMARY KEY (dkey, ts)
) STRICT, WITHOUT ROWID;

CREATE TABLE telemetry_latest_messages (
	dkey INTEGER NOT NULL PRIMARY KEY REFERENCES device_keys (dkey) ON DELETE CASCADE,
	data TEXT    NOT NULL
) STRICT;

INSERT INTO device_keys (device_id)
	SELECT device_id FROM telemetry_latest UNION SELECT device_id FROM telemetry ORDER BY 1;

INSERT INTO telemetry_messages (dkey, ts, n, data)
	SELECT k.dkey, t.ts, count(*),
		'{' || group_concat(json_quote(t.attribute) || ':' || t.value, ',' ORDER BY t.attribute) || '}'
	FROM telemetry t JOIN device_keys k ON k.device_id = t.device_id
	GROUP BY k.dkey, t.ts;

INSERT INTO telemetry_latest_messages (dkey, data)
	SELECT k.dkey,
		'{' || group_concat(json_quote(l.attribute) || ':[' || l.ts || ',' || l.value || ']', ',' ORDER BY l.attribute) || '}'
	FROM telemetry_latest l JOIN device_keys k ON k.device_id = l.device_id
	GROUP BY k.dkey;

DROP TABLE telemetry;
DROP TABLE telemetry_latest;
ALTER TABLE telemetry_messages RENAME TO telemetry;
ALTER TABLE telemetry_latest_messages RENAME TO telemetry_latest;
`,
}

// migrate brings the schema up to len(migrations), one transaction per step,
// and refuses a database whose version is beyond what this code knows.
func (s *Store) migrate(ctx context.Context) error {
	return migrateTo(ctx, s.w, migrations)
}

// migrateTo applies steps to db; separate from migrate so tests can run a
// longer or shorter list.
func migrateTo(ctx context.Context, db *sql.DB, steps []string) error {
	for {
		done, err := migrateStep(ctx, db, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next step, if any, reading the version inside the
// write transaction so that two processes opening one file cannot both apply it.
func migrateStep(ctx context.Context, db *sql.DB, steps []string) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return false, fmt.Errorf("migrate: read version: %w", err)
	}
	switch {
	case v > len(steps):
		return false, fmt.Errorf("schema version %d, this edk knows up to %d (upgrade edk or use another data folder): %w",
			v, len(steps), ErrSchemaTooNew)
	case v == len(steps):
		return true, tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, steps[v]); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	return false, nil
}
