package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/hub/store"
)

// MaxTimeseriesColumns bounds the columns (device attributes) of one
// query_timeseries request.
const MaxTimeseriesColumns = 100

// timeseriesColumn is one column of a query_timeseries answer.
type timeseriesColumn struct {
	device   string // as the request named it
	attr     string
	dataType string // Enapter's: float, integer, string, string_array, boolean
	points   []store.Point
}

// queryTimeseries answers Enapter's POST /v3/telemetry/query_timeseries:
// the body is {"from", "to", "granularity": "60s", "telemetry": [{"device",
// "attribute": [...], "aggregation", "gap_filling": {"method": "none" or
// "locf", "look_around": "300s"}}]};
// the answer is CSV, one row per bucket start (Unix seconds) and one column
// per device attribute, headed "device=<id> telemetry=<attribute>", with
// each column's data type in the X-Enapter-Timeseries-Data-Types header.
// A bucket without a value is an empty cell.
func (s *server) queryTimeseries(w http.ResponseWriter, r *http.Request) {
	var body struct {
		From        string `json:"from"`
		To          string `json:"to"`
		Granularity string `json:"granularity"`
		Telemetry   []struct {
			Device      string          `json:"device"`
			Attribute   json.RawMessage `json:"attribute"`
			Aggregation string          `json:"aggregation"`
			GapFilling  *struct {
				Method     string `json:"method"`
				LookAround string `json:"look_around"`
			} `json:"gap_filling"`
		} `json:"telemetry"`
	}
	if !decode(w, r, &body) {
		return
	}
	from, ok := timeField(w, "from", body.From)
	if !ok {
		return
	}
	to, ok := timeField(w, "to", body.To)
	if !ok {
		return
	}
	if !to.After(from) {
		invalid(w, "to", "must be after from")
		return
	}
	g, err := time.ParseDuration(body.Granularity)
	if err != nil || g < time.Second {
		invalid(w, "granularity", `must be a duration of at least 1s, such as "60s"`)
		return
	}
	if to.Sub(from)/g > MaxBuckets {
		invalid(w, "granularity", fmt.Sprintf("gives more than %d buckets between from and to", MaxBuckets))
		return
	}
	if len(body.Telemetry) == 0 {
		invalid(w, "telemetry", "name at least one device and its attributes")
		return
	}
	var cols []*timeseriesColumn
	for i, sel := range body.Telemetry {
		field := fmt.Sprintf("telemetry[%d]", i)
		attrs, ok := attributeList(w, field+".attribute", sel.Attribute)
		if !ok {
			return
		}
		if len(cols)+len(attrs) > MaxTimeseriesColumns {
			invalid(w, "telemetry", fmt.Sprintf("asks for more than %d columns", MaxTimeseriesColumns))
			return
		}
		var lookAround time.Duration // with locf
		locf := false
		if gf := sel.GapFilling; gf != nil {
			switch strings.ToLower(gf.Method) {
			case "", "none":
			case "locf":
				locf = true
				if gf.LookAround != "" {
					d, err := time.ParseDuration(gf.LookAround)
					if err != nil || d < 0 {
						invalid(w, field+".gap_filling.look_around", `must be a duration such as "300s"`)
						return
					}
					lookAround = d
				}
				if lookAround/g > MaxBuckets {
					invalid(w, field+".gap_filling.look_around", fmt.Sprintf("gives more than %d buckets before from", MaxBuckets))
					return
				}
			default:
				invalid(w, field+".gap_filling.method", "must be none or locf")
				return
			}
		}
		agg := strings.ToLower(sel.Aggregation)
		var sagg store.Aggregation
		switch agg {
		case "", "auto":
			sagg = store.AggAuto
		case "avg", "min", "max", "last":
			sagg = store.Aggregation(agg)
		case "bool_or":
			sagg = store.AggLast // refined below from the raw points
		default:
			invalid(w, field+".aggregation", "must be auto, avg, last, min, max or bool_or")
			return
		}
		d, err := s.lookupDevice(r, sel.Device)
		if err != nil {
			s.fail(w, r, "device", err, map[string]any{"device_id": sel.Device, "field": field + ".device"})
			return
		}
		gran := g
		if agg == "bool_or" {
			gran = 0
		}
		query := func(from, to time.Time) ([][]store.Point, bool) {
			series, err := s.cfg.Store.QueryTelemetry(r.Context(), d.ID, attrs, from, to, gran, sagg)
			if err != nil {
				s.fail(w, r, "telemetry", err, map[string]any{"device_id": d.ID})
				return nil, false
			}
			pts := make([][]store.Point, len(series))
			for i, se := range series {
				pts[i] = se.Points
				if agg == "bool_or" {
					pts[i] = boolOr(pts[i], g)
				}
			}
			return pts, true
		}
		pts, ok := query(from, to)
		if !ok {
			return
		}
		if locf {
			// The buckets before from are queried on their own, so that
			// they only feed the gap filling and never merge into the
			// first bucket of the answer.
			var before [][]store.Point
			if lookAround > 0 {
				if before, ok = query(from.Add(-lookAround), from); !ok {
					return
				}
			}
			for i := range pts {
				var seed []store.Point
				if before != nil {
					seed = before[i]
				}
				pts[i] = carryForward(seed, pts[i], from, to, g, lookAround)
			}
		}
		m := s.manifests.get(d)
		for i, a := range attrs {
			cols = append(cols, &timeseriesColumn{device: sel.Device, attr: a,
				dataType: dataType(m, a, agg, pts[i]), points: pts[i]})
		}
	}
	writeTimeseries(w, cols)
}

// timeField parses a required time in a JSON body (see parseTime).
func timeField(w http.ResponseWriter, field, v string) (time.Time, bool) {
	if v == "" {
		invalid(w, field, "is required (RFC 3339)")
		return time.Time{}, false
	}
	if t, ok := parseTime(v); ok {
		return t, true
	}
	invalid(w, field, "must be an RFC 3339 time")
	return time.Time{}, false
}

// parseTime parses an RFC 3339 time. One without a zone is UTC: that is
// what Enapter's Python SDK sends for a naive datetime (its isoformat()).
func parseTime(v string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// queryTime is an optional time parameter of a URL query and where it goes.
type queryTime struct {
	name string
	dst  *time.Time
}

// queryTimes reads the parameters present into their destinations; the
// first bad one is 400 naming it, and false.
func queryTimes(w http.ResponseWriter, q url.Values, params ...queryTime) bool {
	for _, p := range params {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, ok := parseTime(v)
		if !ok {
			badRequest(w, p.name+" must be an RFC 3339 time", map[string]any{"field": p.name})
			return false
		}
		*p.dst = t
	}
	return true
}

// attributeList reads "attribute": a list of names, or one name.
func attributeList(w http.ResponseWriter, field string, raw json.RawMessage) ([]string, bool) {
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		var one string
		if err := json.Unmarshal(raw, &one); err != nil || one == "" {
			invalid(w, field, "must be a list of attribute names")
			return nil, false
		}
		list = []string{one}
	}
	if len(list) == 0 || slices.Contains(list, "") {
		invalid(w, field, "must name at least one attribute, none empty")
		return nil, false
	}
	return list, true
}

// boolOr reduces raw points to one per bucket: true when any value in it
// is true.
func boolOr(raw []store.Point, g time.Duration) []store.Point {
	var out []store.Point
	for _, p := range raw {
		gms := g.Milliseconds()
		start := time.UnixMilli(p.Time.UnixMilli() - p.Time.UnixMilli()%gms).UTC() // epoch-aligned, as the store's buckets
		v := strings.TrimSpace(string(p.Value)) == "true"
		if n := len(out); n > 0 && out[n-1].Time.Equal(start) {
			if v {
				out[n-1].Value = json.RawMessage("true")
			}
			continue
		}
		out = append(out, store.Point{Time: start, Value: json.RawMessage(strconv.FormatBool(v))})
	}
	return out
}

// carryForward is Enapter's "locf" gap filling: every bucket in [from, to)
// without a value of its own takes the value of the latest bucket before it
// (of pts, or else of before, the buckets before from), as long as that
// bucket starts at most lookAround earlier. So look_around bounds how stale
// a carried value may be, and 0 carries nothing.
func carryForward(before, pts []store.Point, from, to time.Time, g, lookAround time.Duration) []store.Point {
	gms, ahead := g.Milliseconds(), lookAround.Milliseconds()
	first := from.UnixMilli() / gms * gms // epoch-aligned, as the store's buckets
	if first > from.UnixMilli() {
		first -= gms
	}
	var last *store.Point
	for i := range before {
		if !isNull(before[i].Value) {
			last = &before[i]
		}
	}
	out := make([]store.Point, 0, len(pts))
	i := 0
	for b := first; b < to.UnixMilli(); b += gms {
		for ; i < len(pts) && pts[i].Time.UnixMilli() < b; i++ {
			out = append(out, pts[i]) // not on a bucket start: kept as it is
			last = &pts[i]
		}
		if i < len(pts) && pts[i].Time.UnixMilli() == b {
			out = append(out, pts[i])
			if !isNull(pts[i].Value) {
				last = &pts[i]
			}
			i++
			continue
		}
		if last != nil && b-last.Time.UnixMilli() <= ahead && !isNull(last.Value) {
			out = append(out, store.Point{Time: time.UnixMilli(b).UTC(), Value: last.Value})
		}
	}
	return append(out, pts[i:]...)
}

func isNull(v json.RawMessage) bool {
	s := strings.TrimSpace(string(v))
	return s == "" || s == "null"
}

// dataType is a column's data type: the manifest's when the device has one
// declaring the attribute, else what the values are. An average is a float
// whatever the attribute's type.
func dataType(m *blueprint.Manifest, attr, agg string, pts []store.Point) string {
	if agg == "bool_or" {
		return "boolean"
	}
	if m != nil {
		if a := m.TelemetryAttribute(attr); a != nil {
			switch a.Type {
			case blueprint.TypeInteger:
				if agg == "min" || agg == "max" || agg == "last" {
					return "integer"
				}
				return "float"
			case blueprint.TypeFloat:
				return "float"
			case blueprint.TypeBoolean:
				return "boolean"
			case blueprint.TypeArrayOfStrings, blueprint.TypeAlerts:
				return "string_array"
			default:
				return "string"
			}
		}
	}
	kind := ""
	for _, p := range pts {
		v := strings.TrimSpace(string(p.Value))
		var k string
		switch {
		case v == "" || v == "null":
			continue
		case v == "true" || v == "false":
			k = "boolean"
		case v[0] == '[':
			k = "string_array"
		case v[0] == '"' || v[0] == '{':
			k = "string"
		default:
			k = "float"
		}
		if kind != "" && kind != k {
			return "string"
		}
		kind = k
	}
	if kind == "" {
		return "float"
	}
	return kind
}

// cell renders a JSON value as Enapter's CSV does: numbers and booleans as
// they are, strings unquoted, arrays and objects as JSON, null empty.
func cell(v json.RawMessage) string {
	s := strings.TrimSpace(string(v))
	switch {
	case s == "" || s == "null":
		return ""
	case s[0] == '"':
		var str string
		if json.Unmarshal(v, &str) == nil {
			return str
		}
	}
	return s
}

func writeTimeseries(w http.ResponseWriter, cols []*timeseriesColumn) {
	var stamps []int64
	byCol := make([]map[int64]json.RawMessage, len(cols))
	types := make([]string, len(cols))
	header := make([]string, 0, len(cols)+1)
	header = append(header, "ts")
	for i, c := range cols {
		byCol[i] = make(map[int64]json.RawMessage, len(c.points))
		for _, p := range c.points {
			ts := p.Time.Unix()
			if _, seen := byCol[i][ts]; !seen {
				stamps = append(stamps, ts)
			}
			byCol[i][ts] = p.Value
		}
		types[i] = c.dataType
		header = append(header, "device="+c.device+" telemetry="+c.attr)
	}
	slices.Sort(stamps)
	stamps = slices.Compact(stamps)
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	_ = cw.Write(header)
	row := make([]string, len(cols)+1)
	for _, ts := range stamps {
		row[0] = strconv.FormatInt(ts, 10)
		for i := range cols {
			row[i+1] = cell(byCol[i][ts])
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Enapter-Timeseries-Data-Types", strings.Join(types, ","))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}
