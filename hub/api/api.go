// Package api serves the hub's HTTP API: Enapter's v3 HTTP API as far as a
// local hub can (its one site, provisioning, devices, blueprints, command
// executions, telemetry and logs, and WebSocket streams of both), shaped as
// Enapter shapes it, so that Enapter's own CLI and Python SDK and scripts
// written for Enapter Cloud work against a local hub unchanged. A device is
// named by its id or its slug everywhere.
//
// Every request must carry the hub's token in the X-Enapter-Auth-Token
// header. WebSocket upgrades may pass it as ?token= instead, because
// browsers cannot set headers on a WebSocket.
//
// Errors come back as {"errors": [{"code", "message", "details"}]} with the
// matching HTTP status. docs/hub-api.md lists every endpoint.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub/store"
	"github.com/gorilla/websocket"
)

// Defaults and bounds.
const (
	// DefaultCommandTimeout is how long execute_command waits for the final
	// response when neither the request nor Config says otherwise.
	DefaultCommandTimeout = 30 * time.Second
	// MaxCommandTimeout bounds the "timeout" of an execute_command request.
	// An http.Server in front of the handler needs a WriteTimeout above it.
	MaxCommandTimeout = 10 * time.Minute
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 1 << 20
	// DefaultLimit and MaxLimit bound the page size of list endpoints.
	DefaultLimit = 50
	MaxLimit     = 1000
	// MaxBuckets bounds the number of buckets of an aggregated telemetry
	// query.
	MaxBuckets = 100_000
)

// Stream kinds passed to Streams.Subscribe.
const (
	StreamTelemetry = "telemetry"
	StreamLogs      = "logs"
)

// AuthHeader is the header that carries the API token, as in Enapter's API.
const AuthHeader = "X-Enapter-Auth-Token"

// Store is the part of *store.Store the API uses.
type Store interface {
	CreateDevice(ctx context.Context, nd store.NewDevice) (store.Device, error)
	GetDevice(ctx context.Context, id string) (store.Device, error)
	ListDevices(ctx context.Context, offset, limit int) ([]store.Device, error)
	UpdateDevice(ctx context.Context, id string, u store.DeviceUpdate) (store.Device, error)
	DeleteDevice(ctx context.Context, id string) error
	GetProperties(ctx context.Context, deviceID string) (store.Properties, error)
	GetConnectivity(ctx context.Context, deviceID string) (store.Connectivity, error)
	MalformedCounts(ctx context.Context, deviceID string) (map[string]store.Malformed, error)
	LatestTelemetry(ctx context.Context, deviceID string, attrs []string) (map[string]store.Point, error)
	QueryTelemetry(ctx context.Context, deviceID string, attrs []string, from, to time.Time,
		granularity time.Duration, agg store.Aggregation) ([]store.Series, error)
	GetExecution(ctx context.Context, executionID string) (store.Execution, error)
	ListExecutions(ctx context.Context, deviceID string, offset, limit int) ([]store.Execution, error)

	GetDeviceBySlug(ctx context.Context, slug string) (store.Device, error)
	CountDevices(ctx context.Context) (int, error)
	Site(ctx context.Context) (store.Site, error)
	CreateBlueprint(ctx context.Context, zip []byte, manifest json.RawMessage) (store.Blueprint, error)
	GetBlueprint(ctx context.Context, id string) (store.Blueprint, error)
	AssignBlueprint(ctx context.Context, deviceID, blueprintID string) (store.Device, error)
	QueryLogs(ctx context.Context, deviceID string, q store.LogQuery) ([]store.LogEntry, int, error)
}

var _ Store = (*store.Store)(nil)

// Executor sends a command to a device and waits for its final response or
// the timeout. A device that does not answer in time is not an error: the
// execution comes back in state TIMEOUT. Errors wrapping store.ErrNotFound
// or store.ErrInvalid become 404 and 422; any other error is a 500.
type Executor interface {
	Execute(ctx context.Context, deviceID string, req store.ExecutionRequest, timeout time.Duration) (store.Execution, error)
}

// Starter is an Executor that can also send a command without waiting
// (POST /v3/devices/{id}/command_executions): Start returns the NEW
// execution and finishes it in the background. An Executor without it
// answers that endpoint with 501.
type Starter interface {
	Start(ctx context.Context, deviceID string, req store.ExecutionRequest, timeout time.Duration) (store.Execution, error)
}

// Provisioner issues a device's credentials and returns its communication
// config (a Version3 config) for the protocol. Errors wrapping
// store.ErrNotFound become 404; others are a 500.
type Provisioner interface {
	GenerateConfig(ctx context.Context, deviceID string, protocol commconfig.Protocol) (*commconfig.Config, error)
}

// StreamEvent is one message of a stream.
type StreamEvent struct {
	// Data is one JSON value; it is sent as it is, as one WebSocket text
	// message.
	Data json.RawMessage
}

// Streams hands out live streams of a device's messages. Subscribe returns
// a channel of events and a function that ends the subscription; the
// implementation may close the channel to end the stream (for example
// when the hub shuts down). The API calls the function exactly once.
type Streams interface {
	Subscribe(deviceID string, kind string) (<-chan StreamEvent, func())
}

// Config configures New.
type Config struct {
	// Token is the API token every request must carry. Required.
	Token string
	// Store is the hub's store. Required.
	Store Store
	// Executor runs execute_command; nil answers 501.
	Executor Executor
	// Presence tells whether a device is connected now; a command to one
	// that is not is refused at once (device_offline). nil leaves it to the
	// connectivity in the store.
	Presence Presence
	// SeesEverySession says that Presence sees every device session (the
	// hub's own broker, no anonymous clients): a device it has never seen,
	// and the store has no connectivity of, has never connected, and a
	// command to it is refused at once too.
	SeesEverySession bool
	// Provisioner runs generate_config; nil answers 501.
	Provisioner Provisioner
	// Streams feeds the WebSocket streams; nil answers 501.
	Streams Streams
	// ManifestAssigned, when set, is called after assign_blueprint stored a
	// device's manifest (the hub tells ingest to check telemetry against it).
	ManifestAssigned func(d store.Device)
	// Logger gets one line per 5xx and per stream; nil discards.
	Logger *slog.Logger
	// DefaultCommandTimeout is used when an execute_command request has
	// no timeout. Default DefaultCommandTimeout.
	DefaultCommandTimeout time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

type server struct {
	cfg      Config
	log      *slog.Logger
	tokenSum [sha256.Size]byte
	mux      *http.ServeMux
	upgrader websocket.Upgrader

	manifests manifestCache
	site      siteCache
}

// New returns the API handler. It panics when Token or Store is missing:
// that is a wiring mistake, not a run-time condition.
func New(cfg Config) http.Handler {
	if cfg.Token == "" {
		panic("api: Config.Token is required")
	}
	if cfg.Store == nil {
		panic("api: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultCommandTimeout <= 0 {
		cfg.DefaultCommandTimeout = DefaultCommandTimeout
	}
	cfg.DefaultCommandTimeout = min(cfg.DefaultCommandTimeout, MaxCommandTimeout)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &server{
		cfg:      cfg,
		log:      cfg.Logger,
		tokenSum: sha256.Sum256([]byte(cfg.Token)),
		mux:      http.NewServeMux(),
		upgrader: websocket.Upgrader{HandshakeTimeout: 10 * time.Second},
	}
	m := s.mux
	m.HandleFunc("POST /v3/provisioning/standalone", s.createStandalone)
	m.HandleFunc("GET /v3/sites", s.listSites)
	m.HandleFunc("GET /v3/users/me/sites", s.listSites)
	// enapter3 site list --my-sites asks for this path.
	m.HandleFunc("GET /v3/sites/users/me/sites", s.listSites)
	m.HandleFunc("GET /v3/site", s.getSite)
	m.HandleFunc("GET /v3/sites/{site_id}", s.getSite)
	m.HandleFunc("GET /v3/sites/{site_id}/devices", s.listDevices)
	m.HandleFunc("GET /v3/sites/{site_id}/commands/executions", s.listSiteExecutions)
	m.HandleFunc("GET /v3/devices", s.listDevices)
	m.HandleFunc("GET /v3/devices/{device_id}", s.getDevice)
	m.HandleFunc("PATCH /v3/devices/{device_id}", s.updateDevice)
	m.HandleFunc("DELETE /v3/devices/{device_id}", s.deleteDevice)
	m.HandleFunc("POST /v3/devices/{device_id}/generate_config", s.generateConfig)
	m.HandleFunc("POST /v3/devices/{device_id}/execute_command", s.executeCommand)
	m.HandleFunc("POST /v3/devices/{device_id}/assign_blueprint", s.assignBlueprint)
	m.HandleFunc("GET /v3/devices/{device_id}/command_executions", s.listExecutions)
	m.HandleFunc("POST /v3/devices/{device_id}/command_executions", s.createExecution)
	m.HandleFunc("GET /v3/devices/{device_id}/command_executions/{execution_id}", s.getExecution)
	m.HandleFunc("GET /v3/telemetry/latest", s.latestTelemetry)
	m.HandleFunc("GET /v3/telemetry", s.queryTelemetry)
	m.HandleFunc("POST /v3/telemetry/query_timeseries", s.queryTimeseries)
	// A plain GET answers with the stored data, an upgrade streams it.
	m.HandleFunc("GET /v3/devices/{device_id}/telemetry", s.streamOr(StreamTelemetry, s.deviceTelemetry))
	m.HandleFunc("GET /v3/devices/{device_id}/logs", s.streamOr(StreamLogs, s.deviceLogs))
	m.HandleFunc("POST /v3/blueprints/upload", s.uploadBlueprint)
	m.HandleFunc("POST /v3/blueprints/validate", s.validateBlueprint)
	m.HandleFunc("GET /v3/blueprints/{blueprint_id}", s.getBlueprint)
	m.HandleFunc("GET /v3/blueprints/{blueprint_id}/zip", s.downloadBlueprint)
	return s
}

// ServeHTTP checks the token, then routes. The mux's own plain-text 404 and
// 405 answers are turned into JSON errors.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		writeError(w, http.StatusUnauthorized, "unauthorized",
			"missing or wrong API token: send it in the "+AuthHeader+" header", nil)
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		h.ServeHTTP(&jsonStatusWriter{ResponseWriter: w}, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *server) authorized(r *http.Request) bool {
	got := r.Header.Get(AuthHeader)
	if got == "" && websocket.IsWebSocketUpgrade(r) {
		got = r.URL.Query().Get("token")
	}
	if got == "" {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// jsonStatusWriter replaces the body of the mux's 404 and 405 answers with
// a JSON error, keeping the status and the Allow header.
type jsonStatusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (j *jsonStatusWriter) WriteHeader(code int) {
	if j.wrote {
		return
	}
	j.wrote = true
	j.Header().Del("X-Content-Type-Options")
	switch code {
	case http.StatusMethodNotAllowed:
		writeError(j.ResponseWriter, code, "method_not_allowed",
			"method not allowed; allowed: "+j.Header().Get("Allow"), nil)
	default:
		writeError(j.ResponseWriter, http.StatusNotFound, "not_found", "no such endpoint", nil)
	}
}

func (j *jsonStatusWriter) Write(p []byte) (int, error) {
	if !j.wrote {
		j.WriteHeader(http.StatusNotFound)
	}
	return len(p), nil
}
