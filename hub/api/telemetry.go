package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/edk-go/edk/hub/store"
)

// datapointJSON is one latest value. An attribute the device never sent
// (or whose value is older than relevance_interval) has both fields null:
// Enapter's Python SDK tells a missing value by a null timestamp.
type datapointJSON struct {
	Timestamp *int64          `json:"timestamp"`
	Value     json.RawMessage `json:"value"`
}

// latestTelemetry answers GET /v3/telemetry/latest?devices[<id>]=a,b with
// the latest value of each attribute; an empty list means every attribute
// the device has sent. relevance_interval (a Go duration such as "60s")
// turns older values into nulls.
func (s *server) latestTelemetry(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var relevance time.Duration
	if v := q.Get("relevance_interval"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			badRequest(w, `relevance_interval must be a duration such as "60s"`, map[string]any{"field": "relevance_interval"})
			return
		}
		if d <= 0 {
			invalid(w, "relevance_interval", "must be positive")
			return
		}
		relevance = d
	}
	want := map[string][]string{}
	for k, vs := range q {
		id, ok := strings.CutPrefix(k, "devices[")
		if !ok {
			continue
		}
		id, ok = strings.CutSuffix(id, "]")
		if !ok || id == "" {
			badRequest(w, "bad parameter "+k+": use devices[<device_id>]=attr1,attr2", map[string]any{"field": k})
			return
		}
		for _, v := range vs {
			want[id] = append(want[id], splitList(v)...)
		}
	}
	if len(want) == 0 {
		badRequest(w, "name at least one device: devices[<device_id>]=attr1,attr2", map[string]any{"field": "devices"})
		return
	}
	now := s.cfg.Now()
	out := make(map[string]map[string]datapointJSON, len(want))
	for id, attrs := range want {
		// Answered under the name asked for, which may be a slug.
		d, err := s.lookupDevice(r, id)
		if err != nil {
			s.fail(w, r, "device", err, map[string]any{"device_id": id})
			return
		}
		pts, err := s.cfg.Store.LatestTelemetry(r.Context(), d.ID, attrs)
		if err != nil {
			s.fail(w, r, "device", err, map[string]any{"device_id": id})
			return
		}
		m := make(map[string]datapointJSON, max(len(attrs), len(pts)))
		for _, a := range attrs {
			m[a] = datapointJSON{Value: json.RawMessage("null")}
		}
		for a, p := range pts {
			if relevance > 0 && now.Sub(p.Time) > relevance {
				m[a] = datapointJSON{Value: json.RawMessage("null")}
				continue
			}
			ts := p.Time.Unix()
			m[a] = datapointJSON{Timestamp: &ts, Value: p.Value}
		}
		out[id] = m
	}
	writeJSON(w, http.StatusOK, map[string]any{"telemetry": out})
}

// seriesJSON is one attribute of a time-series query.
type seriesJSON struct {
	Attribute string          `json:"attribute"`
	Points    []datapointJSON `json:"points"`
}

// queryTelemetry answers GET /v3/telemetry?device=<id>&attributes=a,b
// &from=<RFC 3339>&to=<RFC 3339>&granularity=1m&aggregation=avg.
// to defaults to now, from to an hour before to; without granularity the
// raw points come back.
func (s *server) queryTelemetry(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("device")
	if id == "" {
		badRequest(w, "device is required", map[string]any{"field": "device"})
		return
	}
	attrs := splitList(q.Get("attributes"))
	if len(attrs) == 0 {
		badRequest(w, "attributes is required: a comma-separated list", map[string]any{"field": "attributes"})
		return
	}
	to, from := s.cfg.Now(), time.Time{}
	if !queryTimes(w, q, queryTime{"to", &to}, queryTime{"from", &from}) {
		return
	}
	if from.IsZero() {
		from = to.Add(-time.Hour)
	}
	if !from.Before(to) {
		invalid(w, "from", "must be before to")
		return
	}
	var gran time.Duration
	granText := q.Get("granularity")
	if granText != "" {
		g, err := time.ParseDuration(granText)
		if err != nil {
			badRequest(w, `granularity must be a duration such as "1m"`, map[string]any{"field": "granularity"})
			return
		}
		if g < time.Second {
			invalid(w, "granularity", "must be at least 1s")
			return
		}
		if to.Sub(from)/g > MaxBuckets {
			invalid(w, "granularity", "gives too many buckets for the time range; use a coarser one")
			return
		}
		gran = g
	}
	agg := store.Aggregation(q.Get("aggregation"))
	switch agg {
	case store.AggAuto, store.AggAvg, store.AggMin, store.AggMax, store.AggLast:
	default:
		invalid(w, "aggregation", "must be avg, min, max or last")
		return
	}
	d, err := s.lookupDevice(r, id)
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": id})
		return
	}
	id = d.ID
	series, err := s.cfg.Store.QueryTelemetry(r.Context(), id, attrs, from, to, gran, agg)
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": id})
		return
	}
	out := make([]seriesJSON, 0, len(series))
	for _, se := range series {
		pts := make([]datapointJSON, 0, len(se.Points))
		for _, p := range se.Points {
			ts := p.Time.Unix()
			pts = append(pts, datapointJSON{Timestamp: &ts, Value: p.Value})
		}
		out = append(out, seriesJSON{Attribute: se.Attribute, Points: pts})
	}
	var granOut any
	if gran > 0 {
		granOut = int64(gran / time.Second)
	}
	writeJSON(w, http.StatusOK, map[string]any{"telemetry": map[string]any{
		"device_id":           id,
		"from":                formatTime(from),
		"to":                  formatTime(to),
		"granularity_seconds": granOut,
		"aggregation":         string(agg),
		"series":              out,
	}})
}
