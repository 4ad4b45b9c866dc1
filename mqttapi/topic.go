package mqttapi

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Direction says who sent a message: the device ("from") or the cloud ("to").
type Direction string

const (
	FromDevice Direction = "from"
	ToDevice   Direction = "to"
)

// Kind is the topic suffix that tells what a message carries.
type Kind string

const (
	KindTelemetry        Kind = "v1/telemetry"
	KindProperties       Kind = "v1/properties"
	KindRegister         Kind = "v1/register" // properties, as Enapter's Python SDK publishes them
	KindLogs             Kind = "v3/logs"
	KindCommandRequests  Kind = "v1/command/requests"
	KindCommandResponses Kind = "v1/command/responses"
)

// kinds lists, per direction, the suffixes that may follow the ids.
var kinds = map[Direction][]Kind{
	FromDevice: {KindTelemetry, KindProperties, KindRegister, KindLogs, KindCommandResponses},
	ToDevice:   {KindCommandRequests},
}

const topicVersion = "v1"

// Topic is a parsed Device MQTT API topic.
type Topic struct {
	Direction  Direction
	HardwareID string
	ChannelID  string
	Kind       Kind
}

// NewTopic builds a topic after checking both ids and that kind travels in dir.
func NewTopic(dir Direction, hardwareID, channelID string, kind Kind) (Topic, error) {
	t := Topic{Direction: dir, HardwareID: hardwareID, ChannelID: channelID, Kind: kind}
	if err := t.Validate(); err != nil {
		return Topic{}, err
	}
	return t, nil
}

// Validate reports whether t can be put on the wire.
func (t Topic) Validate() error {
	if err := ValidateID("hardware_id", t.HardwareID); err != nil {
		return err
	}
	if err := ValidateID("channel_id", t.ChannelID); err != nil {
		return err
	}
	allowed, ok := kinds[t.Direction]
	if !ok {
		return fmt.Errorf("topic direction %q: want %q or %q", t.Direction, FromDevice, ToDevice)
	}
	for _, k := range allowed {
		if k == t.Kind {
			return nil
		}
	}
	return fmt.Errorf("topic kind %q does not travel in direction %q", t.Kind, t.Direction)
}

// String returns the MQTT topic name.
func (t Topic) String() string {
	return topicVersion + "/" + string(t.Direction) + "/" + t.HardwareID + "/" + t.ChannelID + "/" + string(t.Kind)
}

// ParseTopic parses a topic name; it accepts only the kinds that travel in the
// topic's direction.
func ParseTopic(s string) (Topic, error) {
	parts := strings.SplitN(s, "/", 5)
	if len(parts) != 5 || parts[0] != topicVersion {
		return Topic{}, fmt.Errorf("parse topic %q: want v1/<from|to>/<hardware_id>/<channel_id>/<kind>", s)
	}
	t := Topic{Direction: Direction(parts[1]), HardwareID: parts[2], ChannelID: parts[3], Kind: Kind(parts[4])}
	if err := t.Validate(); err != nil {
		return Topic{}, fmt.Errorf("parse topic %q: %w", s, err)
	}
	return t, nil
}

// DeviceFilter returns the subscription filter for every topic of one
// channel in one direction, e.g. "v1/to/<hw>/<ch>/#".
func DeviceFilter(dir Direction, hardwareID, channelID string) string {
	return topicVersion + "/" + string(dir) + "/" + hardwareID + "/" + channelID + "/#"
}

// ValidateID checks a hardware or channel id: non-empty, and free of the
// characters that would change the topic's structure or make it a wildcard.
func ValidateID(field, id string) error {
	if id == "" {
		return fmt.Errorf("%s is empty", field)
	}
	if i := strings.IndexAny(id, "/+#\x00"); i >= 0 {
		return fmt.Errorf("%s %q contains %q, which MQTT topics reserve", field, id, id[i])
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%s is not valid UTF-8, which MQTT topics require", field)
	}
	return nil
}
