package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testIterations keeps password hashing cheap in tests.
const testIterations = 1000

// t0 is a fixed clock for tests.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{PasswordIterations: testIterations})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func openTemp(t testing.TB) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "hub.db"))
}

func mkDevice(t testing.TB, s *Store, n int) Device {
	t.Helper()
	d, err := s.CreateDevice(context.Background(), NewDevice{
		Name: fmt.Sprintf("Device %d", n), Slug: fmt.Sprintf("dev-%d", n),
		HardwareID: fmt.Sprintf("V%032d", n), ChannelID: "ch",
	})
	if err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	return d
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func ptr[T any](v T) *T { return &v }

func TestOpen(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	var mode, sync string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	var fk, rfk, ro int
	if err := s.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&rfk); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(ctx, "PRAGMA query_only").Scan(&ro); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != "1" || fk != 1 || rfk != 1 || ro != 1 {
		t.Errorf("journal_mode=%s synchronous=%s foreign_keys=%d/%d reader query_only=%d, want wal 1 1/1 1",
			mode, sync, fk, rfk, ro)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, len(migrations))
	}

	for _, tc := range []struct{ name, path string }{
		{"empty path", ""},
		{"question mark", "a?b.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Open(ctx, tc.path, Options{}); !errors.Is(err, ErrInvalid) {
				t.Errorf("Open(%q) = %v, want ErrInvalid", tc.path, err)
			}
		})
	}
}

func TestMemory(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, ":memory:")
	d := mkDevice(t, s, 1)
	if _, err := s.AppendTelemetry(ctx, []Sample{{DeviceID: d.ID, Time: t0, Values: map[string]json.RawMessage{"v": raw("1")}}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.LatestTelemetry(ctx, d.ID, nil)
	if err != nil || string(got["v"].Value) != "1" {
		t.Errorf("LatestTelemetry = %v, %v", got, err)
	}
}

func TestDeviceCRUD(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d, err := s.CreateDevice(ctx, NewDevice{
		Name: "Inverter", Slug: "inverter", HardwareID: "VHW1", ChannelID: "primary",
		BlueprintID: "bp", Manifest: raw(`{"blueprint_spec":"device/3.0"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.ID) != 36 || d.CreatedAt.IsZero() || !d.CreatedAt.Equal(d.UpdatedAt) {
		t.Errorf("created %+v", d)
	}
	for _, tc := range []struct {
		name string
		get  func() (Device, error)
	}{
		{"by id", func() (Device, error) { return s.GetDevice(ctx, d.ID) }},
		{"by hardware id", func() (Device, error) { return s.GetDeviceByHardwareID(ctx, "VHW1") }},
		{"by slug", func() (Device, error) { return s.GetDeviceBySlug(ctx, "inverter") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.get()
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != d.ID || got.Name != "Inverter" || got.ChannelID != "primary" || got.BlueprintID != "bp" ||
				string(got.Manifest) != `{"blueprint_spec":"device/3.0"}` || !got.CreatedAt.Equal(d.CreatedAt) {
				t.Errorf("got %+v, want %+v", got, d)
			}
		})
	}
	for _, tc := range []struct {
		name string
		get  func() (Device, error)
	}{
		{"missing id", func() (Device, error) { return s.GetDevice(ctx, "nope") }},
		{"missing hardware id", func() (Device, error) { return s.GetDeviceByHardwareID(ctx, "nope") }},
		{"missing slug", func() (Device, error) { return s.GetDeviceBySlug(ctx, "nope") }},
		{"missing fingerprint", func() (Device, error) { return s.GetDeviceByCertFingerprint(ctx, "ab") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.get(); !errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}

	for i := 2; i <= 5; i++ {
		mkDevice(t, s, i)
	}
	for _, tc := range []struct {
		name          string
		offset, limit int
		want          []string
	}{
		{"all", 0, 0, []string{"inverter", "dev-2", "dev-3", "dev-4", "dev-5"}},
		{"first page", 0, 2, []string{"inverter", "dev-2"}},
		{"second page", 2, 2, []string{"dev-3", "dev-4"}},
		{"past the end", 10, 2, []string{}},
	} {
		t.Run("list "+tc.name, func(t *testing.T) {
			ds, err := s.ListDevices(ctx, tc.offset, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, d := range ds {
				got = append(got, d.Slug)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("slugs %v, want %v", got, tc.want)
			}
		})
	}
	if n, err := s.CountDevices(ctx); err != nil || n != 5 {
		t.Errorf("CountDevices = %d, %v", n, err)
	}
}

func TestCreateDeviceErrors(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	first, err := s.CreateDevice(ctx, NewDevice{Name: "a", Slug: "a", HardwareID: "HA", ChannelID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		nd      NewDevice
		want    error
		wantMsg string
	}{
		{"slug taken", NewDevice{Name: "b", Slug: "a", HardwareID: "HB", ChannelID: "c"}, ErrConflict, "slug"},
		{"hardware id taken", NewDevice{Name: "b", Slug: "b", HardwareID: "HA", ChannelID: "c"}, ErrConflict, "hardware id"},
		{"id taken", NewDevice{ID: first.ID, Name: "b", Slug: "b", HardwareID: "HB", ChannelID: "c"}, ErrConflict, "device id"},
		{"empty name", NewDevice{Slug: "b", HardwareID: "HB", ChannelID: "c"}, ErrInvalid, "name"},
		{"empty slug", NewDevice{Name: "b", HardwareID: "HB", ChannelID: "c"}, ErrInvalid, "slug"},
		{"empty hardware id", NewDevice{Name: "b", Slug: "b", ChannelID: "c"}, ErrInvalid, "hardware id"},
		{"empty channel", NewDevice{Name: "b", Slug: "b", HardwareID: "HB"}, ErrInvalid, "channel id"},
		{"bad manifest", NewDevice{Name: "b", Slug: "b", HardwareID: "HB", ChannelID: "c", Manifest: raw("{")}, ErrInvalid, "manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateDevice(ctx, tc.nd)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %v, want %v mentioning %q", err, tc.want, tc.wantMsg)
			}
		})
	}
	if n, _ := s.CountDevices(ctx); n != 1 {
		t.Errorf("%d devices after failed creates, want 1", n)
	}
}

func TestUpdateDevice(t *testing.T) {
	ctx := context.Background()
	now := t0
	s, err := Open(ctx, filepath.Join(t.TempDir(), "hub.db"), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := mkDevice(t, s, 1)
	mkDevice(t, s, 2)
	now = t0.Add(time.Minute)
	for _, tc := range []struct {
		name  string
		id    string
		u     DeviceUpdate
		want  error
		check func(t *testing.T, d Device)
	}{
		{"rename", d.ID, DeviceUpdate{Name: ptr("New name")}, nil, func(t *testing.T, got Device) {
			if got.Name != "New name" || got.Slug != "dev-1" || !got.UpdatedAt.Equal(now) || !got.CreatedAt.Equal(t0) {
				t.Errorf("got %+v", got)
			}
		}},
		{"new slug", d.ID, DeviceUpdate{Slug: ptr("renamed")}, nil, func(t *testing.T, got Device) {
			if got.Name != "New name" || got.Slug != "renamed" {
				t.Errorf("got %+v", got)
			}
		}},
		{"set manifest", d.ID, DeviceUpdate{BlueprintID: ptr("bp2"), Manifest: raw(`{"x":1}`)}, nil, func(t *testing.T, got Device) {
			if got.BlueprintID != "bp2" || string(got.Manifest) != `{"x":1}` {
				t.Errorf("got %+v", got)
			}
		}},
		{"remove manifest", d.ID, DeviceUpdate{Manifest: raw(`null`)}, nil, func(t *testing.T, got Device) {
			if got.Manifest != nil {
				t.Errorf("manifest %s, want none", got.Manifest)
			}
		}},
		{"slug taken", d.ID, DeviceUpdate{Slug: ptr("dev-2")}, ErrConflict, nil},
		{"empty slug", d.ID, DeviceUpdate{Slug: ptr("")}, ErrInvalid, nil},
		{"empty name", d.ID, DeviceUpdate{Name: ptr(" ")}, ErrInvalid, nil},
		{"unknown device", "nope", DeviceUpdate{Name: ptr("x")}, ErrNotFound, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.UpdateDevice(ctx, tc.id, tc.u)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.check != nil {
				tc.check(t, got)
				again, _ := s.GetDevice(ctx, tc.id)
				tc.check(t, again)
			}
		})
	}
}

func TestDeleteDeviceCascades(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	keep := mkDevice(t, s, 2)
	dkeys := make(map[string]int64) // telemetry is keyed by device key
	for _, dev := range []Device{d, keep} {
		fill(t, s, dev.ID)
		k, ok, err := s.telemetryKey(ctx, dev.ID)
		if err != nil || !ok {
			t.Fatalf("telemetry key of %s: %v, %v", dev.ID, ok, err)
		}
		dkeys[dev.ID] = k
	}
	if err := s.DeleteDevice(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDevice(ctx, d.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	for _, tc := range []struct{ table, col string }{
		{"device_keys", "device_id"}, {"telemetry", "dkey"}, {"telemetry_latest", "dkey"}, {"properties", "device_id"},
		{"connectivity", "device_id"}, {"logs", "device_id"}, {"executions", "device_id"},
		{"malformed", "device_id"}, {"devices", "id"},
	} {
		t.Run(tc.table, func(t *testing.T) {
			var gone, kept int
			q := "SELECT count(*) FROM " + tc.table + " WHERE " + tc.col + " = ?"
			arg := func(id string) any {
				if tc.col == "dkey" {
					return dkeys[id]
				}
				return id
			}
			if err := s.r.QueryRowContext(ctx, q, arg(d.ID)).Scan(&gone); err != nil {
				t.Fatal(err)
			}
			if err := s.r.QueryRowContext(ctx, q, arg(keep.ID)).Scan(&kept); err != nil {
				t.Fatal(err)
			}
			if gone != 0 || kept == 0 {
				t.Errorf("%d rows of the deleted device (want 0), %d of the other (want some)", gone, kept)
			}
		})
	}
	var responses int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM execution_responses").Scan(&responses); err != nil {
		t.Fatal(err)
	}
	if responses != 1 {
		t.Errorf("%d execution responses left, want 1 (the kept device's)", responses)
	}
}

// fill stores one of everything for a device.
func fill(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.AppendTelemetry(ctx, []Sample{{DeviceID: id, Time: t0, Values: map[string]json.RawMessage{"v": raw("1")}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetProperties(ctx, id, t0, map[string]json.RawMessage{"model": raw(`"x"`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConnectivity(ctx, id, true, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendLogs(ctx, []LogEntry{{DeviceID: id, Time: t0, Severity: "info", Message: "hi"}}); err != nil {
		t.Fatal(err)
	}
	e, err := s.CreateExecution(ctx, id, ExecutionRequest{Name: "reboot"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddExecutionResponse(ctx, e.ID, ExecutionResponse{State: ResponseSucceeded}); err != nil {
		t.Fatal(err)
	}
	if err := s.IncrementMalformed(ctx, id, "telemetry"); err != nil {
		t.Fatal(err)
	}
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	a := mkDevice(t, s, 1)
	b := mkDevice(t, s, 2)
	if err := s.SetPassword(ctx, a.ID, "user-a", "secret-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, b.ID, "user-b", "secret-b"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, user, pass string
		want             string // device id, "" for ErrUnauthorized
	}{
		{"right password", "user-a", "secret-a", a.ID},
		{"other device", "user-b", "secret-b", b.ID},
		{"wrong password", "user-a", "secret-b", ""},
		{"empty password", "user-a", "", ""},
		{"unknown user", "user-c", "secret-a", ""},
		{"password prefix", "user-a", "secret", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := s.VerifyCredentials(ctx, tc.user, tc.pass)
			if tc.want == "" {
				if !errors.Is(err, ErrUnauthorized) {
					t.Errorf("err = %v, want ErrUnauthorized", err)
				}
				if err != nil && strings.Contains(err.Error(), tc.pass) && tc.pass != "" {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil || d.ID != tc.want || !d.HasPassword || d.MQTTUsername != tc.user {
				t.Errorf("got %+v, %v; want device %s", d, err, tc.want)
			}
		})
	}

	t.Run("username taken", func(t *testing.T) {
		if err := s.SetPassword(ctx, b.ID, "user-a", "x"); !errors.Is(err, ErrConflict) {
			t.Errorf("err = %v, want ErrConflict", err)
		}
	})
	t.Run("unknown device", func(t *testing.T) {
		if err := s.SetPassword(ctx, "nope", "user-z", "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("rotate", func(t *testing.T) {
		if err := s.SetPassword(ctx, a.ID, "user-a", "new"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyCredentials(ctx, "user-a", "secret-a"); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("old password: %v, want ErrUnauthorized", err)
		}
		if _, err := s.VerifyCredentials(ctx, "user-a", "new"); err != nil {
			t.Errorf("new password: %v", err)
		}
	})
	t.Run("clear", func(t *testing.T) {
		if err := s.ClearPassword(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyCredentials(ctx, "user-a", "new"); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("err = %v, want ErrUnauthorized", err)
		}
		if d, _ := s.GetDevice(ctx, a.ID); d.HasPassword || d.MQTTUsername != "" {
			t.Errorf("after clear: %+v", d)
		}
	})
	t.Run("hash is salted and not the password", func(t *testing.T) {
		var h1, h2 string
		if err := s.r.QueryRowContext(ctx, "SELECT password_hash FROM devices WHERE id = ?", b.ID).Scan(&h1); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPassword(ctx, b.ID, "user-b", "secret-b"); err != nil {
			t.Fatal(err)
		}
		if err := s.r.QueryRowContext(ctx, "SELECT password_hash FROM devices WHERE id = ?", b.ID).Scan(&h2); err != nil {
			t.Fatal(err)
		}
		if h1 == h2 || strings.Contains(h1, "secret") || !strings.HasPrefix(h1, "pbkdf2-sha256$1000$") {
			t.Errorf("hashes %q, %q", h1, h2)
		}
	})
	t.Run("dummy hash costs a real check", func(t *testing.T) {
		// An unknown username must go through a whole check of the scheme
		// generated passwords use, so the dummy hash has to parse like one.
		parts := strings.Split(s.dummyHash(), "$")
		rparts := strings.Split(hashSecret("x"), "$")
		if len(parts) != 3 || parts[0] != rparts[0] || len(parts[1]) != len(rparts[1]) || len(parts[2]) != len(rparts[2]) {
			t.Errorf("dummy %q does not look like %q", s.dummyHash(), hashSecret("x"))
		}
		if checkPassword(s.dummyHash(), "") {
			t.Error("dummy hash matches the empty password")
		}
	})
}

func TestGeneratedPassword(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	a := mkDevice(t, s, 1)
	secret := strings.Repeat("k", MinGeneratedPasswordLen)
	if err := s.SetGeneratedPassword(ctx, a.ID, "user-a", secret[1:]); !errors.Is(err, ErrInvalid) {
		t.Errorf("a short generated password: err = %v, want ErrInvalid", err)
	}
	if err := s.SetGeneratedPassword(ctx, a.ID, "user-a", secret); err != nil {
		t.Fatal(err)
	}
	var h string
	if err := s.r.QueryRowContext(ctx, "SELECT password_hash FROM devices WHERE id = ?", a.ID).Scan(&h); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "sha256$") || strings.Contains(h, secret) {
		t.Errorf("hash %q: want a salted sha256 hash, not the password", h)
	}
	if d, err := s.VerifyCredentials(ctx, "user-a", secret); err != nil || d.ID != a.ID {
		t.Errorf("VerifyCredentials = %+v, %v", d, err)
	}
	if _, err := s.VerifyCredentials(ctx, "user-a", secret+"x"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong password: err = %v, want ErrUnauthorized", err)
	}
	// A PBKDF2 hash of an older data folder still verifies.
	if err := s.SetPassword(ctx, a.ID, "user-a", "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyCredentials(ctx, "user-a", "old"); err != nil {
		t.Errorf("PBKDF2 password: %v", err)
	}
}

func TestCheckPassword(t *testing.T) {
	h, err := hashPassword("pw", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, hash, pw string
		want           bool
	}{
		{"match", h, "pw", true},
		{"mismatch", h, "pW", false},
		{"empty hash", "", "pw", false},
		{"other scheme", strings.Replace(h, "pbkdf2-sha256", "md5", 1), "pw", false},
		{"bad iterations", strings.Replace(h, "$10$", "$x$", 1), "pw", false},
		{"zero iterations", strings.Replace(h, "$10$", "$0$", 1), "pw", false},
		{"short key", h[:len(h)-4], "pw", false},
		{"secret match", hashSecret("pw"), "pw", true},
		{"secret mismatch", hashSecret("pw"), "px", false},
		{"secret short key", hashSecret("pw")[:60], "pw", false},
		{"secret bad salt", "sha256$!!$" + strings.Split(hashSecret("pw"), "$")[2], "pw", false},
		{"secret extra part", hashSecret("pw") + "$x", "pw", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkPassword(tc.hash, tc.pw); got != tc.want {
				t.Errorf("checkPassword = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCertFingerprint(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	a := mkDevice(t, s, 1)
	b := mkDevice(t, s, 2)
	if err := s.SetCertFingerprint(ctx, a.ID, "ABCDEF"); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetDeviceByCertFingerprint(ctx, "abcdef")
	if err != nil || d.ID != a.ID || d.CertFingerprint != "abcdef" {
		t.Errorf("got %+v, %v", d, err)
	}
	if err := s.SetCertFingerprint(ctx, b.ID, "abcdef"); !errors.Is(err, ErrConflict) {
		t.Errorf("taken fingerprint: %v, want ErrConflict", err)
	}
	if err := s.SetCertFingerprint(ctx, a.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDeviceByCertFingerprint(ctx, "abcdef"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after removal: %v, want ErrNotFound", err)
	}
}

func TestDatabaseFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CountDevices(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600: it holds password hashes and every device's data", p, mode)
		}
	}
}
