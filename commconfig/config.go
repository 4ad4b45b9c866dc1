package commconfig

import (
	"net"
	"strconv"
	"strings"
	"unicode"
)

// Protocol is the MQTT transport a config asks for.
type Protocol string

const (
	ProtocolMQTT  Protocol = "MQTT"  // plain TCP, optional username and password
	ProtocolMQTTS Protocol = "MQTTS" // TLS with a client certificate
)

// Version is the shape of the blob a Config came from.
type Version int

const (
	// Version1 is the virtual UCM blob (ucm_id, mqtt_ca, …). A v1 device must
	// also serve the "ucm" channel of its hardware id.
	Version1 Version = 1
	// Version3 is the standalone device blob (hardware_id, mqtt_credentials, …).
	Version3 Version = 3
)

// Config is a decoded communication config. Its fields are exported for
// convenience; printing, logging or JSON-marshalling a Config shows only a
// redacted view (see String). Use Encode to get the real blob back.
//
// Unknown keys in a blob, including time_sync_*, are ignored: edk leaves
// clock synchronisation to the operating system.
type Config struct {
	Version    Version
	HardwareID string // v3 hardware_id, v1 ucm_id
	ChannelID  string
	Host       string // mqtt_host
	Port       int    // mqtt_port
	// Protocol is v3 mqtt_protocol or mqtt_credentials.protocol; for v1 it is
	// MQTTS when any certificate field is present, MQTT otherwise.
	Protocol Protocol
	Username string
	Password string
	// PEM: v3 ca_chain, certificate, private_key; v1 mqtt_ca, mqtt_cert,
	// mqtt_private_key.
	CACert     string
	ClientCert string
	ClientKey  string
}

// fieldNames maps Config fields to the names a user sees in their blob, so
// that errors point at what they can fix.
type fieldNames struct {
	hardwareID, protocol, ca, cert, key string
}

var (
	v1Names = fieldNames{"ucm_id", "mqtt_protocol", "mqtt_ca", "mqtt_cert", "mqtt_private_key"}
	v3Names = fieldNames{
		"hardware_id", "mqtt_protocol",
		"mqtt_credentials.ca_chain", "mqtt_credentials.certificate", "mqtt_credentials.private_key",
	}
)

func (c Config) names() fieldNames {
	if c.Version == Version1 {
		return v1Names
	}
	return v3Names
}

const (
	portProblem     = "must be a number between 1 and 65535"
	protocolProblem = `must be "MQTT" or "MQTTS"`
)

// Validate reports the first problem that would stop a device from
// connecting with c, as a *FieldError. For MQTTS it parses the PEM material.
func (c Config) Validate() error {
	n := c.names()
	if c.Version != Version1 && c.Version != Version3 {
		return &FieldError{Field: "version", Problem: "must be 1 or 3"}
	}
	if err := checkID(n.hardwareID, c.HardwareID); err != nil {
		return err
	}
	if err := checkID("channel_id", c.ChannelID); err != nil {
		return err
	}
	if c.Host == "" {
		return &FieldError{Field: "mqtt_host", Problem: "is missing or empty"}
	}
	if strings.IndexFunc(c.Host, unicode.IsSpace) >= 0 {
		return &FieldError{Field: "mqtt_host", Problem: "must not contain spaces"}
	}
	if c.Port < 1 || c.Port > 65535 {
		return &FieldError{Field: "mqtt_port", Problem: portProblem}
	}
	switch c.Protocol {
	case ProtocolMQTT:
		// Credentials are optional: a local broker or gateway may allow
		// anonymous clients, and the broker is the one to refuse.
		return nil
	case ProtocolMQTTS:
		_, err := c.loadTLS()
		return err
	case "":
		return &FieldError{Field: n.protocol, Problem: "is missing; it " + protocolProblem}
	default:
		return &FieldError{Field: n.protocol, Problem: protocolProblem}
	}
}

// checkID rejects ids that would break the topics they are put in:
// v1/from/<hardware_id>/<channel_id>/….
func checkID(field, id string) error {
	if id == "" {
		return &FieldError{Field: field, Problem: "is missing or empty"}
	}
	if strings.ContainsAny(id, "/+#\x00") {
		return &FieldError{Field: field, Problem: "must not contain '/', '+', '#' or NUL (they have a meaning in MQTT topics)"}
	}
	return nil
}

// BrokerURL returns the broker address in the form paho expects:
// tcp://host:port for MQTT, ssl://host:port for MQTTS, IPv6 hosts bracketed.
func (c Config) BrokerURL() string {
	scheme := "tcp"
	if c.Protocol == ProtocolMQTTS {
		scheme = "ssl"
	}
	return scheme + "://" + net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}
