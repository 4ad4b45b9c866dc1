package mqttapi_test

import (
	"strings"
	"testing"

	"github.com/edk-go/edk/mqttapi"
)

const (
	testHW = "ZZ1D8E3F56A2B4C7E9"
	testCh = "primary"
)

// allKinds pairs every kind with the one direction it travels in.
var allKinds = []struct {
	kind mqttapi.Kind
	dir  mqttapi.Direction
}{
	{mqttapi.KindTelemetry, mqttapi.FromDevice},
	{mqttapi.KindProperties, mqttapi.FromDevice},
	{mqttapi.KindRegister, mqttapi.FromDevice},
	{mqttapi.KindLogs, mqttapi.FromDevice},
	{mqttapi.KindCommandResponses, mqttapi.FromDevice},
	{mqttapi.KindCommandRequests, mqttapi.ToDevice},
}

func otherDirection(d mqttapi.Direction) mqttapi.Direction {
	if d == mqttapi.FromDevice {
		return mqttapi.ToDevice
	}
	return mqttapi.FromDevice
}

func TestNewTopicEveryKind(t *testing.T) {
	for _, k := range allKinds {
		t.Run(string(k.dir)+"/"+string(k.kind), func(t *testing.T) {
			topic, err := mqttapi.NewTopic(k.dir, testHW, testCh, k.kind)
			if err != nil {
				t.Fatalf("NewTopic: %v", err)
			}
			want := "v1/" + string(k.dir) + "/" + testHW + "/" + testCh + "/" + string(k.kind)
			if got := topic.String(); got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			back, err := mqttapi.ParseTopic(topic.String())
			if err != nil {
				t.Fatalf("ParseTopic(%q): %v", topic, err)
			}
			if back != topic {
				t.Errorf("ParseTopic(String()) = %+v, want %+v", back, topic)
			}
		})
	}
}

func TestNewTopicWrongDirection(t *testing.T) {
	for _, k := range allKinds {
		wrong := otherDirection(k.dir)
		t.Run(string(wrong)+"/"+string(k.kind), func(t *testing.T) {
			topic, err := mqttapi.NewTopic(wrong, testHW, testCh, k.kind)
			if err == nil {
				t.Fatalf("NewTopic(%q, %q) = %v, want an error", wrong, k.kind, topic)
			}
			if topic != (mqttapi.Topic{}) {
				t.Errorf("NewTopic returned %+v with its error, want the zero Topic", topic)
			}
			s := "v1/" + string(wrong) + "/" + testHW + "/" + testCh + "/" + string(k.kind)
			if got, err := mqttapi.ParseTopic(s); err == nil {
				t.Errorf("ParseTopic(%q) = %+v, want an error", s, got)
			}
		})
	}
}

func TestNewTopicInvalid(t *testing.T) {
	tests := []struct {
		name    string
		dir     mqttapi.Direction
		hw, ch  string
		kind    mqttapi.Kind
		errPart string // a piece the error message must contain
	}{
		{"empty hardware id", mqttapi.FromDevice, "", testCh, mqttapi.KindTelemetry, "hardware_id"},
		{"empty channel id", mqttapi.FromDevice, testHW, "", mqttapi.KindTelemetry, "channel_id"},
		{"slash in hardware id", mqttapi.FromDevice, "ZZ1/D8", testCh, mqttapi.KindTelemetry, "hardware_id"},
		{"slash in channel id", mqttapi.FromDevice, testHW, "pri/mary", mqttapi.KindTelemetry, "channel_id"},
		{"plus in hardware id", mqttapi.FromDevice, "+", testCh, mqttapi.KindTelemetry, "hardware_id"},
		{"plus in channel id", mqttapi.ToDevice, testHW, "a+b", mqttapi.KindCommandRequests, "channel_id"},
		{"hash in hardware id", mqttapi.ToDevice, "#", testCh, mqttapi.KindCommandRequests, "hardware_id"},
		{"hash in channel id", mqttapi.FromDevice, testHW, "ch#1", mqttapi.KindLogs, "channel_id"},
		{"NUL in hardware id", mqttapi.FromDevice, "ZZ\x00", testCh, mqttapi.KindTelemetry, "hardware_id"},
		{"NUL in channel id", mqttapi.FromDevice, testHW, "\x00", mqttapi.KindProperties, "channel_id"},
		{"unknown direction", "sideways", testHW, testCh, mqttapi.KindTelemetry, "direction"},
		{"empty direction", "", testHW, testCh, mqttapi.KindTelemetry, "direction"},
		{"unknown kind", mqttapi.FromDevice, testHW, testCh, "v1/bogus", "kind"},
		{"empty kind", mqttapi.FromDevice, testHW, testCh, "", "kind"},
		{"kind with extra part", mqttapi.FromDevice, testHW, testCh, "v1/telemetry/extra", "kind"},
		{"kind of wrong version", mqttapi.FromDevice, testHW, testCh, "v2/telemetry", "kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic, err := mqttapi.NewTopic(tt.dir, tt.hw, tt.ch, tt.kind)
			if err == nil {
				t.Fatalf("NewTopic = %q, want an error", topic)
			}
			if !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("error %q does not mention %q", err, tt.errPart)
			}
			if err := (mqttapi.Topic{Direction: tt.dir, HardwareID: tt.hw, ChannelID: tt.ch, Kind: tt.kind}).Validate(); err == nil {
				t.Errorf("Validate accepted what NewTopic refused")
			}
		})
	}
}

func TestParseTopicInvalid(t *testing.T) {
	tests := []struct {
		name  string
		topic string
	}{
		{"empty", ""},
		{"only version", "v1"},
		{"too few parts", "v1/from/" + testHW + "/" + testCh},
		{"no kind after channel", "v1/from/" + testHW + "/" + testCh + "/"},
		{"missing channel", "v1/from/" + testHW + "/v1/telemetry"},
		{"wrong version v2", "v2/from/" + testHW + "/" + testCh + "/v1/telemetry"},
		{"version upper case", "V1/from/" + testHW + "/" + testCh + "/v1/telemetry"},
		{"leading slash", "/v1/from/" + testHW + "/" + testCh + "/v1/telemetry"},
		{"unknown direction", "v1/into/" + testHW + "/" + testCh + "/v1/telemetry"},
		{"direction upper case", "v1/FROM/" + testHW + "/" + testCh + "/v1/telemetry"},
		{"empty hardware id", "v1/from//" + testCh + "/v1/telemetry"},
		{"empty channel id", "v1/from/" + testHW + "//v1/telemetry"},
		{"plus hardware id", "v1/from/+/" + testCh + "/v1/telemetry"},
		{"plus channel id", "v1/to/" + testHW + "/+/v1/command/requests"},
		{"hash hardware id", "v1/from/#/" + testCh + "/v1/telemetry"},
		{"hash channel id", "v1/from/" + testHW + "/#/v1/telemetry"},
		{"NUL hardware id", "v1/from/ZZ\x001/" + testCh + "/v1/telemetry"},
		{"NUL channel id", "v1/from/" + testHW + "/p\x00/v1/telemetry"},
		{"filter wildcard suffix", "v1/from/" + testHW + "/" + testCh + "/#"},
		{"extra part after telemetry", "v1/from/" + testHW + "/" + testCh + "/v1/telemetry/extra"},
		{"trailing slash after telemetry", "v1/from/" + testHW + "/" + testCh + "/v1/telemetry/"},
		{"extra part after requests", "v1/to/" + testHW + "/" + testCh + "/v1/command/requests/1"},
		{"half of command kind", "v1/to/" + testHW + "/" + testCh + "/v1/command"},
		{"kind of wrong version", "v1/from/" + testHW + "/" + testCh + "/v3/telemetry"},
		{"kind upper case", "v1/from/" + testHW + "/" + testCh + "/v1/Telemetry"},
		{"requests from device", "v1/from/" + testHW + "/" + testCh + "/v1/command/requests"},
		{"telemetry to device", "v1/to/" + testHW + "/" + testCh + "/v1/telemetry"},
		{"responses to device", "v1/to/" + testHW + "/" + testCh + "/v1/command/responses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mqttapi.ParseTopic(tt.topic)
			if err == nil {
				t.Fatalf("ParseTopic(%q) = %+v, want an error", tt.topic, got)
			}
			if got != (mqttapi.Topic{}) {
				t.Errorf("ParseTopic returned %+v with its error, want the zero Topic", got)
			}
			if !strings.Contains(err.Error(), "parse topic") {
				t.Errorf("error %q lacks the %q prefix", err, "parse topic")
			}
		})
	}
}

func TestParseTopicSamples(t *testing.T) {
	for i, line := range strings.Split(strings.TrimSpace(string(readTestdata(t, "topics.txt"))), "\n") {
		topic, err := mqttapi.ParseTopic(line)
		if err != nil {
			t.Errorf("line %d: ParseTopic(%q): %v", i+1, line, err)
			continue
		}
		if topic.String() != line {
			t.Errorf("line %d: String() = %q, want %q", i+1, topic.String(), line)
		}
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"hardware id", testHW, true},
		{"uuid", "6f0a2b8e-3c1d-4e5f-9a7b-8c9d0e1f2a3b", true},
		{"dots and underscores", "ucm.main_1", true},
		{"unicode", "gerät-1", true},
		{"space", "my device", true},
		{"empty", "", false},
		{"slash", "a/b", false},
		{"plus", "a+b", false},
		{"hash", "a#", false},
		{"NUL", "a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mqttapi.ValidateID("hardware_id", tt.id)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "hardware_id") {
				t.Errorf("error %q does not name the field", err)
			}
		})
	}
}

func TestDeviceFilter(t *testing.T) {
	tests := []struct {
		name string
		dir  mqttapi.Direction
		want string
	}{
		{"to device", mqttapi.ToDevice, "v1/to/" + testHW + "/" + testCh + "/#"},
		{"from device", mqttapi.FromDevice, "v1/from/" + testHW + "/" + testCh + "/#"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			filter := mqttapi.DeviceFilter(tt.dir, testHW, testCh)
			if filter != tt.want {
				t.Fatalf("DeviceFilter = %q, want %q", filter, tt.want)
			}
			// Every topic of that channel and direction matches the filter,
			// and none of the other direction or another channel does.
			for _, k := range allKinds {
				topic := mqttapi.Topic{Direction: k.dir, HardwareID: testHW, ChannelID: testCh, Kind: k.kind}
				if got, want := filterMatches(filter, topic.String()), k.dir == tt.dir; got != want {
					t.Errorf("filter %q matches %q: %v, want %v", filter, topic, got, want)
				}
				other := mqttapi.Topic{Direction: k.dir, HardwareID: testHW, ChannelID: testCh + "2", Kind: k.kind}
				if filterMatches(filter, other.String()) {
					t.Errorf("filter %q matches another channel's topic %q", filter, other)
				}
			}
		})
	}
}

// filterMatches is MQTT topic matching, enough for the filters built here
// ("+" one level, "#" the rest).
func filterMatches(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		if level == "#" {
			return true
		}
		if i >= len(t) || level != "+" && level != t[i] {
			return false
		}
	}
	return len(f) == len(t)
}
