// Package commconfig owns Enapter communication config blobs: the base64 JSON
// that Enapter Cloud or a gateway hands out for a standalone device (v3) or a
// virtual UCM (v1). It decodes and validates them, reads them from the
// environment, builds TLS material from them, encodes new ones for the hub and
// redacts them for display and logs.
//
// It never dials anything: callers take BrokerURL and TLSConfig to their MQTT
// client.
//
// Secrets (passwords, private keys) and certificate bodies never appear in the
// output of String, fmt verbs, slog, JSON marshalling, Describe or any error
// returned by this package.
package commconfig
