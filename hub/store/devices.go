package store

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Device is a provisioned standalone device.
type Device struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Slug        string `json:"slug"`
	HardwareID  string `json:"hardware_id"`
	ChannelID   string `json:"channel_id"`
	BlueprintID string `json:"blueprint_id,omitempty"`
	// Manifest is the device's blueprint manifest as JSON, nil when none.
	Manifest json.RawMessage `json:"manifest,omitempty"`
	// MQTTUsername is empty until SetPassword gives the device a password.
	MQTTUsername string `json:"mqtt_username,omitempty"`
	// HasPassword reports whether a password hash is stored.
	HasPassword bool `json:"has_password"`
	// CertFingerprint is the SHA-256 fingerprint (hex) of the device's
	// client certificate, empty when none was issued.
	CertFingerprint string    `json:"cert_fingerprint,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// NewDevice is what CreateDevice needs. Name, Slug, HardwareID and ChannelID
// are required; ID is generated when empty.
type NewDevice struct {
	ID          string
	Name        string
	Slug        string
	HardwareID  string
	ChannelID   string
	BlueprintID string
	Manifest    json.RawMessage
}

// DeviceUpdate lists the fields UpdateDevice changes; nil leaves a field as it is.
type DeviceUpdate struct {
	Name        *string
	Slug        *string
	BlueprintID *string
	// Manifest replaces the manifest when non-nil; JSON null removes it.
	Manifest json.RawMessage
}

// deviceColumns names the device columns for scanDevice, in its order.
const deviceColumns = `id, name, slug, hardware_id, channel_id, blueprint_id, manifest,
	mqtt_username, password_hash IS NOT NULL, cert_fingerprint, created_at, updated_at`

// deviceConflicts names the unique device columns for error messages.
var deviceConflicts = map[string]string{
	"devices.slug":             "slug",
	"devices.hardware_id":      "hardware id",
	"devices.mqtt_username":    "MQTT username",
	"devices.cert_fingerprint": "certificate fingerprint",
	"devices.id":               "device id",
}

type scanner interface{ Scan(dest ...any) error }

// scanDevice reads the deviceColumns, then any extra columns into extra.
func scanDevice(row scanner, extra ...any) (Device, error) {
	var (
		d                Device
		manifest         []byte
		user, fp         sql.NullString
		created, updated int64
	)
	dest := append([]any{&d.ID, &d.Name, &d.Slug, &d.HardwareID, &d.ChannelID, &d.BlueprintID, &manifest,
		&user, &d.HasPassword, &fp, &created, &updated}, extra...)
	err := row.Scan(dest...)
	if err != nil {
		return Device{}, err
	}
	if len(manifest) > 0 {
		d.Manifest = json.RawMessage(manifest)
	}
	d.MQTTUsername, d.CertFingerprint = user.String, fp.String
	d.CreatedAt, d.UpdatedAt = fromMS(created), fromMS(updated)
	return d, nil
}

// manifestValue checks a manifest and turns it into a column value (NULL for
// nil or JSON null).
func manifestValue(m json.RawMessage) (any, error) {
	if len(m) == 0 || string(m) == "null" {
		return nil, nil
	}
	if !json.Valid(m) {
		return nil, fmt.Errorf("manifest is not valid JSON: %w", ErrInvalid)
	}
	return []byte(m), nil
}

// CreateDevice stores a new device and returns it. It fails with ErrConflict
// when the slug, hardware id or id is taken, ErrInvalid when a required field
// is empty.
func (s *Store) CreateDevice(ctx context.Context, nd NewDevice) (Device, error) {
	for _, f := range []struct{ name, v string }{
		{"name", nd.Name}, {"slug", nd.Slug}, {"hardware id", nd.HardwareID}, {"channel id", nd.ChannelID},
	} {
		if strings.TrimSpace(f.v) == "" {
			return Device{}, fmt.Errorf("store: create device: %s is empty: %w", f.name, ErrInvalid)
		}
	}
	manifest, err := manifestValue(nd.Manifest)
	if err != nil {
		return Device{}, fmt.Errorf("store: create device: %w", err)
	}
	if nd.ID == "" {
		nd.ID = newID()
	}
	now := ms(s.now())
	var d Device
	err = s.write(ctx, func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, `INSERT INTO devices
			(id, name, slug, hardware_id, channel_id, blueprint_id, manifest, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+deviceColumns,
			nd.ID, nd.Name, nd.Slug, nd.HardwareID, nd.ChannelID, nd.BlueprintID, manifest, now, now)
		var err error
		d, err = scanDevice(row)
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("store: create device: %w", uniqueConflict(err, deviceConflicts))
	}
	return d, nil
}

// getDevice reads one device by a unique column.
func (s *Store) getDevice(ctx context.Context, col, v string) (Device, error) {
	st, err := s.readStmt(ctx, "SELECT "+deviceColumns+" FROM devices WHERE "+col+" = ?")
	if err != nil {
		return Device{}, err
	}
	d, err := scanDevice(st.QueryRowContext(ctx, v))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, ErrNotFound
	}
	return d, err
}

// GetDevice returns the device with the given id, or ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (Device, error) {
	d, err := s.getDevice(ctx, "id", id)
	if err != nil {
		return Device{}, fmt.Errorf("store: get device %s: %w", id, err)
	}
	return d, nil
}

// GetDeviceByHardwareID returns the device with the given hardware id, or
// ErrNotFound.
func (s *Store) GetDeviceByHardwareID(ctx context.Context, hardwareID string) (Device, error) {
	d, err := s.getDevice(ctx, "hardware_id", hardwareID)
	if err != nil {
		return Device{}, fmt.Errorf("store: get device by hardware id %s: %w", hardwareID, err)
	}
	return d, nil
}

// GetDeviceBySlug returns the device with the given slug, or ErrNotFound.
func (s *Store) GetDeviceBySlug(ctx context.Context, slug string) (Device, error) {
	d, err := s.getDevice(ctx, "slug", slug)
	if err != nil {
		return Device{}, fmt.Errorf("store: get device by slug %s: %w", slug, err)
	}
	return d, nil
}

// GetDeviceByCertFingerprint returns the device whose client certificate has
// the given fingerprint, or ErrNotFound.
func (s *Store) GetDeviceByCertFingerprint(ctx context.Context, fingerprint string) (Device, error) {
	d, err := s.getDevice(ctx, "cert_fingerprint", strings.ToLower(fingerprint))
	if err != nil {
		return Device{}, fmt.Errorf("store: get device by certificate: %w", err)
	}
	return d, nil
}

// ListDevices returns up to limit devices after skipping offset, oldest first.
// A limit <= 0 means no limit.
func (s *Store) ListDevices(ctx context.Context, offset, limit int) ([]Device, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+deviceColumns+
		" FROM devices ORDER BY created_at, rowid LIMIT ? OFFSET ?", limit, max(offset, 0))
	if err != nil {
		return nil, fmt.Errorf("store: list devices: %w", err)
	}
	defer rows.Close()
	out := []Device{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list devices: %w", err)
	}
	return out, nil
}

// CountDevices returns the number of devices.
func (s *Store) CountDevices(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM devices").Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count devices: %w", err)
	}
	return n, nil
}

// UpdateDevice changes the fields set in u and returns the device as stored.
// It fails with ErrNotFound, ErrConflict (slug taken) or ErrInvalid (empty
// name or slug).
func (s *Store) UpdateDevice(ctx context.Context, id string, u DeviceUpdate) (Device, error) {
	var (
		sets []string
		args []any
	)
	if u.Name != nil {
		if strings.TrimSpace(*u.Name) == "" {
			return Device{}, fmt.Errorf("store: update device %s: name is empty: %w", id, ErrInvalid)
		}
		sets, args = append(sets, "name = ?"), append(args, *u.Name)
	}
	if u.Slug != nil {
		if strings.TrimSpace(*u.Slug) == "" {
			return Device{}, fmt.Errorf("store: update device %s: slug is empty: %w", id, ErrInvalid)
		}
		sets, args = append(sets, "slug = ?"), append(args, *u.Slug)
	}
	if u.BlueprintID != nil {
		sets, args = append(sets, "blueprint_id = ?"), append(args, *u.BlueprintID)
	}
	if u.Manifest != nil {
		m, err := manifestValue(u.Manifest)
		if err != nil {
			return Device{}, fmt.Errorf("store: update device %s: %w", id, err)
		}
		sets, args = append(sets, "manifest = ?"), append(args, m)
	}
	sets, args = append(sets, "updated_at = ?"), append(args, ms(s.now()))
	args = append(args, id)
	var d Device
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		d, err = scanDevice(tx.QueryRowContext(ctx,
			"UPDATE devices SET "+strings.Join(sets, ", ")+" WHERE id = ? RETURNING "+deviceColumns, args...))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("store: update device %s: %w", id, uniqueConflict(err, deviceConflicts))
	}
	return d, nil
}

// DeleteDevice removes a device and everything stored about it (telemetry,
// properties, logs, executions, counters). It fails with ErrNotFound.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error { return execOne(ctx, tx, "DELETE FROM devices WHERE id = ?", id) })
	if err != nil {
		return fmt.Errorf("store: delete device %s: %w", id, err)
	}
	return nil
}

// SetPassword gives the device an MQTT username and password, replacing any
// earlier pair. Only a salted PBKDF2-SHA256 hash of the password is kept.
// Fails with ErrConflict when another device has the username.
func (s *Store) SetPassword(ctx context.Context, deviceID, username, password string) error {
	if username == "" || password == "" {
		return fmt.Errorf("store: set password for %s: empty username or password: %w", deviceID, ErrInvalid)
	}
	hash, err := hashPassword(password, s.opts.PasswordIterations)
	if err != nil {
		return fmt.Errorf("store: set password for %s: %w", deviceID, err)
	}
	return s.updateCredential(ctx, deviceID, "set password",
		"mqtt_username = ?, password_hash = ?", username, hash)
}

// MinGeneratedPasswordLen is the shortest password SetGeneratedPassword
// takes: 32 characters, e.g. 24 random bytes in base64url (192 bits).
const MinGeneratedPasswordLen = 32

// SetGeneratedPassword is SetPassword for a password that is a random
// secret of at least 128 bits, as generate_config issues: it keeps a salted
// SHA-256 hash instead of PBKDF2. Key stretching protects passwords a person
// chose, which can be guessed; a 192-bit random secret cannot be, with or
// without it (the same reasoning stores API tokens as plain hashes). What it
// saves is the hub's CPU: a PBKDF2 check is ~14 ms of a core, so 10 000
// devices connecting after a hub restart cost over two minutes of both cores
// in password checks alone (BENCHMARKS.md, "Hub: a fleet of devices"); a
// SHA-256 check is about a microsecond. The caller vouches for the
// randomness; the length is only a guard against a mistake.
func (s *Store) SetGeneratedPassword(ctx context.Context, deviceID, username, password string) error {
	if username == "" || len(password) < MinGeneratedPasswordLen {
		return fmt.Errorf("store: set generated password for %s: empty username or a password under %d characters: %w",
			deviceID, MinGeneratedPasswordLen, ErrInvalid)
	}
	return s.updateCredential(ctx, deviceID, "set password",
		"mqtt_username = ?, password_hash = ?", username, hashSecret(password))
}

// ClearPassword removes the device's MQTT username and password.
func (s *Store) ClearPassword(ctx context.Context, deviceID string) error {
	return s.updateCredential(ctx, deviceID, "clear password", "mqtt_username = NULL, password_hash = NULL")
}

// SetCertFingerprint records the fingerprint (SHA-256, hex) of the device's
// client certificate; "" removes it. Fails with ErrConflict when another
// device has it.
func (s *Store) SetCertFingerprint(ctx context.Context, deviceID, fingerprint string) error {
	var v any
	if fingerprint != "" {
		v = strings.ToLower(fingerprint)
	}
	return s.updateCredential(ctx, deviceID, "set certificate", "cert_fingerprint = ?", v)
}

func (s *Store) updateCredential(ctx context.Context, deviceID, op, set string, args ...any) error {
	args = append(args, ms(s.now()), deviceID)
	err := s.write(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, "UPDATE devices SET "+set+", updated_at = ? WHERE id = ?", args...)
	})
	if err != nil {
		return fmt.Errorf("store: %s for %s: %w", op, deviceID, uniqueConflict(err, deviceConflicts))
	}
	return nil
}

// VerifyCredentials returns the device whose MQTT username and password these
// are. A wrong password and an unknown username both give ErrUnauthorized,
// and take the same time as a generated password's check: an unknown
// username is checked against a dummy hash of that scheme. (A password set
// with SetPassword takes longer: PBKDF2.)
func (s *Store) VerifyCredentials(ctx context.Context, username, password string) (Device, error) {
	var hash sql.NullString
	st, err := s.readStmt(ctx, "SELECT "+deviceColumns+", password_hash FROM devices WHERE mqtt_username = ?")
	if err != nil {
		return Device{}, fmt.Errorf("store: verify credentials: %w", err)
	}
	d, err := scanDevice(st.QueryRowContext(ctx, username), &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		hash.Valid = false
	case err != nil:
		return Device{}, fmt.Errorf("store: verify credentials: %w", err)
	}
	stored := hash.String
	if !hash.Valid {
		stored = s.dummyHash()
	}
	ok := checkPassword(stored, password)
	if !ok || !hash.Valid {
		return Device{}, fmt.Errorf("store: verify credentials: %w", ErrUnauthorized)
	}
	return d, nil
}

// dummyHash is a hash of SetGeneratedPassword's scheme that no password
// matches in practice, so that unknown usernames cost as much as the
// passwords generate_config issues.
func (s *Store) dummyHash() string {
	return secretScheme + "$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
}

const passwordKeyLen = 32

// hashPassword returns "pbkdf2-sha256$<iterations>$<salt>$<key>" (raw
// base64url) for a random 16-byte salt.
func hashPassword(password string, iterations int) (string, error) {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, password, salt, iterations, passwordKeyLen)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return "pbkdf2-sha256$" + strconv.Itoa(iterations) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key), nil
}

// checkPassword reports whether password matches hash, comparing the derived
// keys in constant time.
func checkPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) == 3 && parts[0] == secretScheme {
		return checkSecret(parts[1], parts[2], password)
	}
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter <= 0 {
		return false
	}
	enc := base64.RawURLEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) != passwordKeyLen {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, passwordKeyLen)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// execOne runs a statement that must touch one row: none is ErrNotFound.
func execOne(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// secretScheme names SetGeneratedPassword's hashes: "sha256$<salt>$<key>",
// the key SHA-256(salt || password), both raw base64url.
const secretScheme = "sha256"

func hashSecret(password string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	enc := base64.RawURLEncoding
	return secretScheme + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(secretKey(salt, password))
}

func secretKey(salt []byte, password string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(nil)
}

func checkSecret(salt64, key64, password string) bool {
	enc := base64.RawURLEncoding
	salt, err1 := enc.DecodeString(salt64)
	want, err2 := enc.DecodeString(key64)
	if err1 != nil || err2 != nil || len(want) != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(secretKey(salt, password), want) == 1
}
