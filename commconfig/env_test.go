package commconfig

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	v3 := blob(t, v3Doc())
	v1 := blob(t, v1Doc(p))
	raw, err := json.Marshal(v3Doc())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		env         map[string]string
		wantID      string
		wantHost    string
		wantVersion Version
	}{
		{"config", map[string]string{EnvConfig: v3}, "HW0123456789", "192.168.1.10", Version3},
		{"config as raw JSON", map[string]string{EnvConfig: string(raw)}, "HW0123456789", "192.168.1.10", Version3},
		{"legacy", map[string]string{EnvLegacyConfig: v1}, "UCM0123456789", "mqtt.example.com", Version1},
		{"config wins over legacy", map[string]string{EnvConfig: v3, EnvLegacyConfig: v1}, "HW0123456789", "192.168.1.10", Version3},
		{"blank config falls back to legacy", map[string]string{EnvConfig: " ", EnvLegacyConfig: v1}, "UCM0123456789", "mqtt.example.com", Version1},
		{"override host", map[string]string{EnvConfig: v3, EnvOverrideHost: "broker.internal"}, "HW0123456789", "broker.internal", Version3},
		{"override host applies to legacy", map[string]string{EnvLegacyConfig: v1, EnvOverrideHost: " 10.0.0.2 "}, "UCM0123456789", "10.0.0.2", Version1},
		{"empty override ignored", map[string]string{EnvConfig: v3, EnvOverrideHost: ""}, "HW0123456789", "192.168.1.10", Version3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := FromEnv(getenv(tt.env))
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if c.HardwareID != tt.wantID || c.Host != tt.wantHost || c.Version != tt.wantVersion {
				t.Fatalf("FromEnv = %v; want id %q host %q version %d", c, tt.wantID, tt.wantHost, tt.wantVersion)
			}
		})
	}
}

func TestFromEnvErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      map[string]string
		want     error
		mentions string
	}{
		{"nothing set", nil, ErrNotSet, EnvConfig},
		{"both blank", map[string]string{EnvConfig: "", EnvLegacyConfig: "\n"}, ErrNotSet, EnvLegacyConfig},
		{"bad config", map[string]string{EnvConfig: "%%%"}, ErrInvalidBase64, EnvConfig},
		{"bad legacy", map[string]string{EnvLegacyConfig: "%%%"}, ErrInvalidBase64, EnvLegacyConfig},
		{"bad override", map[string]string{EnvConfig: blob(t, v3Doc()), EnvOverrideHost: "a b"}, nil, EnvOverrideHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := FromEnv(getenv(tt.env))
			if err == nil {
				t.Fatal("FromEnv succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mentions) {
				t.Fatalf("error %q does not mention %s", err, tt.mentions)
			}
		})
	}
}

func TestLogLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value   string
		want    slog.Level
		wantErr bool
	}{
		{"", slog.LevelInfo, false},
		{"info", slog.LevelInfo, false},
		{"INFO", slog.LevelInfo, false},
		{"debug", slog.LevelDebug, false},
		{"Debug", slog.LevelDebug, false},
		{"warning", slog.LevelWarn, false},
		{"WARNING", slog.LevelWarn, false},
		{"warn", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{" ERROR\n", slog.LevelError, false},
		{"verbose", slog.LevelInfo, true},
		{"10", slog.LevelInfo, true},
	}
	for _, tt := range tests {
		t.Run("value="+tt.value, func(t *testing.T) {
			t.Parallel()
			got, err := LogLevel(getenv(map[string]string{EnvLogLevel: tt.value}))
			if (err != nil) != tt.wantErr {
				t.Fatalf("LogLevel(%q) error = %v, wantErr %v", tt.value, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("LogLevel(%q) = %v, want %v", tt.value, got, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), EnvLogLevel) {
				t.Fatalf("error %q does not name %s", err, EnvLogLevel)
			}
		})
	}
}
