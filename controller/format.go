package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxShownPayload is how much of a malformed payload FormatEvent shows.
const maxShownPayload = 120

// FormatEvent returns one line of text (no newline) that shows e to a person:
//
//	15:04:05 telemetry  ch=primary power=4700 status="ok" voltage=231.2 alerts=[]
//	15:04:05 properties ch=primary model="X1" serial="42"
//	15:04:05 log        ch=primary [warning] fuel low
//	15:04:05 command →  ch=primary set_power id=ab12 {"power":4700}
//	15:04:05 response ← ch=primary id=ab12 completed {"new_power":4700}
//	15:04:05 malformed  ch=primary decode telemetry: field "timestamp": missing; payload "{\"power\":1}"
//
// Attributes are sorted by name; alerts come last, and only when the device
// reported them. The time is e.Time in its own location.
func FormatEvent(e Event) string {
	var b strings.Builder
	b.WriteString(e.Time.Format("15:04:05"))
	b.WriteByte(' ')
	label := func(s string) {
		b.WriteString(s)
		for n := utf8.RuneCountInString(s); n < 11; n++ {
			b.WriteByte(' ')
		}
		if e.Topic.ChannelID != "" {
			b.WriteString("ch=")
			b.WriteString(e.Topic.ChannelID)
		}
	}
	switch {
	case errors.Is(e.Err, ErrEventsDropped):
		label("dropped")
		b.WriteString(oneLine(e.Err.Error()))
	case e.Err != nil:
		label("malformed")
		if e.Topic.ChannelID != "" {
			b.WriteByte(' ')
		}
		b.WriteString(oneLine(e.Err.Error()))
		if len(e.Payload) > 0 {
			p := e.Payload
			cut := ""
			if len(p) > maxShownPayload {
				p, cut = p[:maxShownPayload], "…"
			}
			b.WriteString("; payload ")
			b.WriteString(strconv.Quote(string(p)))
			b.WriteString(cut)
		}
	case e.Telemetry != nil:
		label("telemetry")
		writeValues(&b, e.Telemetry.Values)
		if a := e.Telemetry.Alerts; a.Known() {
			b.WriteString(" alerts=[")
			for i, name := range a.Names() {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(oneLine(name))
			}
			b.WriteByte(']')
		}
	case e.Properties != nil:
		label("properties")
		writeValues(&b, e.Properties.Values)
	case e.Log != nil:
		label("log")
		b.WriteString(" [")
		b.WriteString(string(e.Log.Severity))
		b.WriteString("] ")
		b.WriteString(oneLine(e.Log.Message))
	case e.Request != nil:
		label("command →")
		b.WriteByte(' ')
		b.WriteString(oneLine(e.Request.Name))
		b.WriteString(" id=")
		b.WriteString(oneLine(e.Request.ID))
		if len(e.Request.Arguments) > 0 {
			b.WriteByte(' ')
			b.WriteString(compactJSON(e.Request.Arguments))
		}
	case e.Response != nil:
		label("response ←")
		b.WriteString(" id=")
		b.WriteString(oneLine(e.Response.ID))
		b.WriteByte(' ')
		b.WriteString(string(e.Response.State))
		if p := compactJSON(e.Response.Payload); p != "{}" && p != "" {
			b.WriteByte(' ')
			b.WriteString(p)
		}
	default:
		label("message")
		b.WriteString(" on ")
		b.WriteString(e.Topic.String())
	}
	return b.String()
}

func writeValues(b *strings.Builder, values map[string]any) {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteByte(' ')
		b.WriteString(oneLine(k))
		b.WriteByte('=')
		b.WriteString(formatValue(values[k]))
	}
}

func formatValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(raw)
}

// compactJSON removes insignificant space from a JSON value.
func compactJSON(raw []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return oneLine(string(raw))
	}
	return b.String()
}

var lineBreaks = strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`)

// oneLine keeps text that came off the wire on one line.
func oneLine(s string) string { return lineBreaks.Replace(s) }
