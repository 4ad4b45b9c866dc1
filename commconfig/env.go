package commconfig

import (
	"fmt"
	"log/slog"
	"strings"
)

// Environment variables read by FromEnv and LogLevel; the names are those of
// Enapter's Python SDK, so one deployment can run either.
const (
	EnvConfig       = "ENAPTER_STANDALONE_COMMUNICATION_CONFIG"
	EnvLegacyConfig = "ENAPTER_VUCM_BLOB"
	EnvOverrideHost = "ENAPTER_STANDALONE_COMMUNICATION_OVERRIDE_MQTT_API_HOST"
	EnvLogLevel     = "ENAPTER_LOG_LEVEL"
)

// FromEnv reads the config from EnvConfig, or EnvLegacyConfig when that is
// empty, and returns ErrNotSet when both are. The value may be the base64
// blob or its JSON.
//
// A non-empty EnvOverrideHost replaces the blob's mqtt_host and nothing else,
// as in the Python SDK: it is how a device in a container or behind NAT
// reaches a broker whose address in the blob it cannot use. An empty one is
// treated as unset (the Python SDK would set an empty host and fail later).
func FromEnv(getenv func(string) string) (*Config, error) {
	name := EnvConfig
	value := getenv(name)
	if strings.TrimSpace(value) == "" {
		name = EnvLegacyConfig
		value = getenv(name)
	}
	if strings.TrimSpace(value) == "" {
		return nil, ErrNotSet
	}
	cfg, err := ParseAny([]byte(value))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if host := strings.TrimSpace(getenv(EnvOverrideHost)); host != "" {
		cfg.Host = host
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvOverrideHost, err)
		}
	}
	return cfg, nil
}

// LogLevel reads EnvLogLevel: debug, info, warning (or warn) or error, in any
// case; empty means info.
func LogLevel(getenv func(string) string) (slog.Level, error) {
	value := getenv(EnvLogLevel)
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("%s=%q: unknown log level; use debug, info, warning or error", EnvLogLevel, value)
}
