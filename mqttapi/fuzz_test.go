package mqttapi_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edk-go/edk/mqttapi"
)

// Each fuzz target checks, for any input: no panic; a failure is a short
// *DecodeError; a success re-encodes, and the re-encoded bytes decode to an
// equal message. Seeds are the samples in testdata/ plus the awkward inputs
// below; crashers found by the fuzzer go to testdata/fuzz/<target>/.

// addSeeds adds the testdata files matching pattern and then extra.
func addSeeds(f *testing.F, pattern string, extra ...string) {
	for _, b := range samples(f, pattern) {
		f.Add(b)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// commonSeeds are bad or borderline payloads worth mutating for every decoder.
var commonSeeds = []string{
	"",
	"{}",
	"null",
	"[]",
	`"x"`,
	"{\"timestamp\":1,\"s\":\"\xff\"}",
	`{"timestamp":1,"v":1e400}`,
	`{"timestamp":1.5}`,
	`{"timestamp":-0}`,
	`{"timestamp":9007199254740993}`,
	`{"timestamp":1,"":1}`,
	`{"timestamp":1,"a":1,"a":"dup"}`,
	`{"timestamp":1,"s":"\ud800\u0000\u2028"}`,
	`{"timestamp":1,"v":[[[{"a":[-0,1e-7,1e21]}]]]}`,
}

func FuzzDecodeTelemetry(f *testing.F) {
	addSeeds(f, "telemetry*.json", commonSeeds...)
	for _, s := range []string{
		`{"timestamp":0,"alerts":[],"a":1}`, // zero timestamp: re-encoded as now
		`{"timestamp":1,"alerts":null}`,
		`{"timestamp":1,"alerts":["a",null,""]}`,
		`{"timestamp":1,"alerts":[1]}`,
		`{"timestamp":1,"Alerts":"x","TIMESTAMP":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tm, err := mqttapi.DecodeTelemetry(b)
		if err != nil {
			asDecodeError(t, err, "telemetry")
			return
		}
		checkTelemetryRoundTrip(t, tm)
	})
}

func FuzzDecodeProperties(f *testing.F) {
	addSeeds(f, "properties*.json", commonSeeds...)
	for _, b := range samples(f, "register*.json") {
		f.Add(b)
	}
	f.Add([]byte(`{"timestamp":1,"alerts":null,"virtual":true}`))
	f.Add([]byte(`{"timestamp":0,"lua_api_ver":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := mqttapi.DecodeProperties(b)
		if err != nil {
			asDecodeError(t, err, "properties")
			return
		}
		checkPropertiesRoundTrip(t, p)
	})
}

func FuzzDecodeLog(f *testing.F) {
	addSeeds(f, "log*.json", commonSeeds...)
	for _, s := range []string{
		`{"timestamp":0,"severity":"debug"}`,
		`{"timestamp":1,"severity":"fatal","message":"m"}`,
		`{"timestamp":1,"severity":"error","message":null,"persist":null}`,
		`{"timestamp":1,"severity":"info","persist":"yes"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := mqttapi.DecodeLog(b)
		if err != nil {
			asDecodeError(t, err, "log")
			return
		}
		checkLogRoundTrip(t, l)
	})
}

func FuzzDecodeCommandRequest(f *testing.F) {
	addSeeds(f, "command_request*.json", commonSeeds...)
	for _, s := range []string{
		`{"id":"r1"}`,
		`{"id":42,"name":"start"}`,
		`{"id":"","name":"start"}`,
		`{"id":"r1","name":"set","arguments":[1]}`,
		`{"id":"r1","name":"set","arguments":null}`,
		`{"id":"r1","id":"r2","Id":"r3","name":5}`,
		"{\"id\":\"r1\",\"name\":\"st\xffart\"}",
		"{\"ID\":\"r1\",\"name\":\"\xff\"}",
		"{\"id\":\"r\xff\",\"name\":\"x\"}",
		"{\"id\":\"r\\ufffd\",\"name\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := mqttapi.DecodeCommandRequest(b)
		if err != nil {
			derr := asDecodeError(t, err, "command request")
			if derr.ID != "" {
				// The id must be one the device can answer on.
				if !utf8.ValidString(derr.ID) {
					t.Fatalf("recovered id %q is not valid UTF-8", derr.ID)
				}
				if _, err := mqttapi.ErrorResponse(derr.ID, derr.Error()).MarshalJSON(); err != nil {
					t.Fatalf("cannot answer on recovered id %q: %v", derr.ID, err)
				}
			}
			return
		}
		if req.ID == "" || req.Name == "" {
			t.Fatalf("decoded a request without id or name: %+v", req)
		}
		checkRequestRoundTrip(t, req)
	})
}

func FuzzDecodeCommandResponse(f *testing.F) {
	addSeeds(f, "command_response*.json", commonSeeds...)
	for _, s := range []string{
		`{"id":"r1","state":"log"}`,
		`{"id":"r1","state":"completed","payload":null}`,
		`{"id":"r1","state":"done"}`,
		`{"id":"r1","state":"error","payload":"boom"}`,
		`{"id":"r1","state":"error","payload": { "message" : "a" } }`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := mqttapi.DecodeCommandResponse(b)
		if err != nil {
			asDecodeError(t, err, "command response")
			return
		}
		if resp.ID == "" {
			t.Fatalf("decoded a response without id: %+v", resp)
		}
		checkResponseRoundTrip(t, resp)
	})
}

func FuzzParseTopic(f *testing.F) {
	for _, line := range strings.Split(strings.TrimSpace(string(readTestdata(f, "topics.txt"))), "\n") {
		f.Add(line)
	}
	for _, s := range []string{
		"",
		"v1/from/a/b/v1/telemetry/extra",
		"v1/to/a/b/v1/telemetry",
		"v1/from/+/b/v1/telemetry",
		"v1/from/a/#",
		"v1/from/a\x00/b/v3/logs",
		"v2/from/a/b/v1/telemetry",
		"v1/from//b/v1/telemetry",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		topic, err := mqttapi.ParseTopic(s)
		if err != nil {
			if topic != (mqttapi.Topic{}) {
				t.Fatalf("ParseTopic(%q) returned %+v with error %v", s, topic, err)
			}
			return
		}
		if got := topic.String(); got != s {
			t.Fatalf("ParseTopic(%q).String() = %q", s, got)
		}
		if err := topic.Validate(); err != nil {
			t.Fatalf("parsed topic %+v does not validate: %v", topic, err)
		}
		built, err := mqttapi.NewTopic(topic.Direction, topic.HardwareID, topic.ChannelID, topic.Kind)
		if err != nil || built != topic {
			t.Fatalf("NewTopic from parsed %+v = %+v, %v", topic, built, err)
		}
		if strings.ContainsAny(topic.HardwareID+topic.ChannelID, "/+#\x00") {
			t.Fatalf("parsed ids contain reserved characters: %+v", topic)
		}
		// The channel's filter matches the topic.
		if !filterMatches(mqttapi.DeviceFilter(topic.Direction, topic.HardwareID, topic.ChannelID), s) {
			t.Fatalf("DeviceFilter does not match %q", s)
		}
	})
}
