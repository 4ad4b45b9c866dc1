package api

import (
	"encoding/json"
	"net/http"

	"github.com/edk-go/edk/hub/store"
)

// logJSON is one stored log entry as Enapter's API lists it: both times
// are RFC 3339 strings (Enapter's CLI reads them so). The hub keeps one
// time per entry (the device's), so timestamp and received_at agree.
type logJSON struct {
	Timestamp  string `json:"timestamp"`
	ReceivedAt string `json:"received_at"`
	Severity   string `json:"severity"`
	Message    string `json:"message"`
	Persist    bool   `json:"persist"`
}

// deviceLogs answers a plain GET /v3/devices/{id}/logs: stored entries,
// oldest first, with Enapter's filters (received_at_from, received_at_to,
// severity, show=ALL|PERSISTED_ONLY|TEMPORARY_ONLY,
// order=RECEIVED_AT_ASC|RECEIVED_AT_DESC, offset, limit) and total_count.
func (s *server) deviceLogs(w http.ResponseWriter, r *http.Request) {
	d, ok := s.device(w, r)
	if !ok {
		return
	}
	offset, limit, ok := pagination(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	lq := store.LogQuery{Offset: offset, Limit: limit, Severity: q.Get("severity")}
	if !queryTimes(w, q, queryTime{"received_at_from", &lq.From}, queryTime{"received_at_to", &lq.To}) {
		return
	}
	switch q.Get("order") {
	case "", "RECEIVED_AT_ASC":
	case "RECEIVED_AT_DESC":
		lq.Newest = true
	default:
		invalid(w, "order", "must be RECEIVED_AT_ASC or RECEIVED_AT_DESC")
		return
	}
	switch q.Get("show") {
	case "", "ALL":
	case "PERSISTED_ONLY":
		lq.Persist = new(bool)
		*lq.Persist = true
	case "TEMPORARY_ONLY":
		lq.Persist = new(bool)
	default:
		invalid(w, "show", "must be ALL, PERSISTED_ONLY or TEMPORARY_ONLY")
		return
	}
	entries, total, err := s.cfg.Store.QueryLogs(r.Context(), d.ID, lq)
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": d.ID})
		return
	}
	out := make([]logJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, logJSON{Timestamp: formatTime(e.Time), ReceivedAt: formatTime(e.Time),
			Severity: e.Severity, Message: e.Message, Persist: e.Persist})
	}
	writeJSON(w, http.StatusOK, map[string]any{"logs": out, "total_count": total})
}

// deviceTelemetry answers a plain GET /v3/devices/{id}/telemetry (what
// enapter3 device telemetry asks without --follow) with the latest value of
// every attribute the device has sent, shaped as /v3/telemetry/latest
// shapes one device.
func (s *server) deviceTelemetry(w http.ResponseWriter, r *http.Request) {
	d, ok := s.device(w, r)
	if !ok {
		return
	}
	latest, err := s.cfg.Store.LatestTelemetry(r.Context(), d.ID, nil)
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": d.ID})
		return
	}
	out := make(map[string]datapointJSON, len(latest))
	for attr, p := range latest {
		ts := p.Time.Unix()
		out[attr] = datapointJSON{Timestamp: &ts, Value: p.Value}
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": d.ID, "telemetry": out})
}

// raisedAlerts returns the alerts of the device's latest telemetry that
// carried an alerts key, empty when none did.
func (s *server) raisedAlerts(r *http.Request, deviceID string) ([]string, error) {
	latest, err := s.cfg.Store.LatestTelemetry(r.Context(), deviceID, []string{store.AlertsAttribute})
	if err != nil {
		return nil, err
	}
	names := []string{}
	if p, ok := latest[store.AlertsAttribute]; ok && len(p.Value) > 0 {
		// Stored by ingest as a JSON array of names; anything else is none.
		_ = json.Unmarshal(p.Value, &names)
		if names == nil {
			names = []string{}
		}
	}
	return names, nil
}
