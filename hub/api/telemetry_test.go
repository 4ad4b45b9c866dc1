package api

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/edk-go/edk/hub/store"
)

func (e *env) appendTelemetry(id string, at time.Time, values map[string]string) {
	e.t.Helper()
	vs := map[string]json.RawMessage{}
	for k, v := range values {
		vs[k] = json.RawMessage(v)
	}
	if _, err := e.st.AppendTelemetry(context.Background(), []store.Sample{{DeviceID: id, Time: at, Values: vs}}); err != nil {
		e.t.Fatal(err)
	}
}

func TestLatestTelemetry(t *testing.T) {
	e := newEnv(t)
	a, b := e.provision("a", "a"), e.provision("b", "b")
	e.appendTelemetry(a, e.now.Add(-10*time.Second), map[string]string{"voltage": "230.5", "status": `"ok"`})
	e.appendTelemetry(a, e.now.Add(-5*time.Minute), map[string]string{"old": "1"})
	e.appendTelemetry(b, e.now.Add(-2*time.Second), map[string]string{"power": "42"})

	type point struct {
		Timestamp *int64 `json:"timestamp"`
		Value     any    `json:"value"`
	}
	get := func(t *testing.T, query string) map[string]map[string]point {
		t.Helper()
		code, body := e.do("GET", "/v3/telemetry/latest?"+query, "")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var out struct {
			Telemetry map[string]map[string]point `json:"telemetry"`
		}
		mustUnmarshal(t, body, &out)
		return out.Telemetry
	}

	t.Run("raw brackets, two devices, one attribute never sent", func(t *testing.T) {
		got := get(t, "devices["+a+"]=voltage,status,missing&devices["+b+"]=power")
		if p := got[a]["voltage"]; p.Timestamp == nil || *p.Timestamp != e.now.Add(-10*time.Second).Unix() || p.Value != 230.5 {
			t.Errorf("voltage %+v", p)
		}
		if got[a]["status"].Value != "ok" || got[b]["power"].Value != 42.0 {
			t.Errorf("got %+v", got)
		}
		if p, ok := got[a]["missing"]; !ok || p.Timestamp != nil || p.Value != nil {
			t.Errorf("missing attribute: %+v present %v", p, ok)
		}
	})
	t.Run("percent-encoded brackets as Python sends them", func(t *testing.T) {
		q := url.Values{"devices[" + a + "]": {"voltage"}}
		got := get(t, q.Encode())
		if len(got[a]) != 1 || got[a]["voltage"].Value != 230.5 {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("empty list means every attribute", func(t *testing.T) {
		got := get(t, "devices["+a+"]=")
		if len(got[a]) != 3 {
			t.Errorf("got %+v", got[a])
		}
	})
	t.Run("relevance interval", func(t *testing.T) {
		got := get(t, "devices["+a+"]=voltage,old&relevance_interval=60s")
		if got[a]["voltage"].Timestamp == nil || got[a]["old"].Timestamp != nil {
			t.Errorf("got %+v", got[a])
		}
	})

	e.runErrorCases(t, []errorCase{
		{name: "no devices", method: "GET", path: "/v3/telemetry/latest", status: 400, code: "bad_request", contains: "devices["},
		{name: "empty device id", method: "GET", path: "/v3/telemetry/latest?devices[]=x", status: 400, code: "bad_request"},
		{name: "unclosed bracket", method: "GET", path: "/v3/telemetry/latest?devices[abc=x", status: 400, code: "bad_request"},
		{name: "unknown device", method: "GET", path: "/v3/telemetry/latest?devices[nope]=x", status: 404, code: "not_found"},
		{name: "bad relevance", method: "GET", path: "/v3/telemetry/latest?devices[" + a + "]=x&relevance_interval=soon", status: 400, code: "bad_request", contains: "relevance_interval"},
		{name: "negative relevance", method: "GET", path: "/v3/telemetry/latest?devices[" + a + "]=x&relevance_interval=-1s", status: 422, code: "invalid", contains: "relevance_interval"},
	})
}

func TestQueryTelemetry(t *testing.T) {
	e := newEnv(t)
	id := e.provision("a", "a")
	base := time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC)
	for i, v := range []string{"1", "3", "10"} {
		e.appendTelemetry(id, base.Add(time.Duration(i)*20*time.Second), map[string]string{"p": v})
	}
	e.appendTelemetry(id, base.Add(90*time.Second), map[string]string{"p": "20"})

	type out struct {
		Telemetry struct {
			DeviceID    string `json:"device_id"`
			From, To    string
			Granularity *int64 `json:"granularity_seconds"`
			Series      []struct {
				Attribute string `json:"attribute"`
				Points    []struct {
					Timestamp int64   `json:"timestamp"`
					Value     float64 `json:"value"`
				} `json:"points"`
			} `json:"series"`
		} `json:"telemetry"`
	}
	from, to := base.Format(time.RFC3339), base.Add(2*time.Minute).Format(time.RFC3339)

	t.Run("raw", func(t *testing.T) {
		code, body := e.do("GET", "/v3/telemetry?device="+id+"&attributes=p,q&from="+from+"&to="+to, "")
		var o out
		mustUnmarshal(t, body, &o)
		if code != 200 || o.Telemetry.Granularity != nil || len(o.Telemetry.Series) != 2 ||
			len(o.Telemetry.Series[0].Points) != 4 || o.Telemetry.Series[1].Attribute != "q" || o.Telemetry.Series[1].Points == nil {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("per minute average", func(t *testing.T) {
		code, body := e.do("GET", "/v3/telemetry?device="+id+"&attributes=p&from="+from+"&to="+to+"&granularity=1m&aggregation=avg", "")
		var o out
		mustUnmarshal(t, body, &o)
		pts := o.Telemetry.Series[0].Points
		if code != 200 || *o.Telemetry.Granularity != 60 || len(pts) != 2 ||
			pts[0].Value != 14.0/3 || pts[0].Timestamp != base.Unix() || pts[1].Value != 20 {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("default range is the last hour", func(t *testing.T) {
		code, body := e.do("GET", "/v3/telemetry?device="+id+"&attributes=p&granularity=1h&aggregation=max", "")
		var o out
		mustUnmarshal(t, body, &o)
		if code != 200 || len(o.Telemetry.Series[0].Points) != 1 || o.Telemetry.Series[0].Points[0].Value != 20 {
			t.Errorf("%d %s", code, body)
		}
	})

	q := "/v3/telemetry?device=" + id + "&attributes=p"
	e.runErrorCases(t, []errorCase{
		{name: "no device", method: "GET", path: "/v3/telemetry?attributes=p", status: 400, code: "bad_request", contains: "device"},
		{name: "no attributes", method: "GET", path: "/v3/telemetry?device=" + id, status: 400, code: "bad_request", contains: "attributes"},
		{name: "unknown device", method: "GET", path: "/v3/telemetry?device=nope&attributes=p", status: 404, code: "not_found"},
		{name: "bad from", method: "GET", path: q + "&from=today", status: 400, code: "bad_request", contains: "from"},
		{name: "from after to", method: "GET", path: q + "&from=" + to + "&to=" + from, status: 422, code: "invalid", contains: "from"},
		{name: "bad granularity", method: "GET", path: q + "&granularity=often", status: 400, code: "bad_request", contains: "granularity"},
		{name: "granularity too fine", method: "GET", path: q + "&granularity=10ms", status: 422, code: "invalid", contains: "granularity"},
		{name: "too many buckets", method: "GET", path: q + "&from=2000-01-01T00:00:00Z&granularity=1s", status: 422, code: "invalid", contains: "buckets"},
		{name: "bad aggregation", method: "GET", path: q + "&aggregation=median", status: 422, code: "invalid", contains: "aggregation"},
	})
}
