package commconfig

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Parse decodes and validates a base64 blob as Enapter shows it. Standard and
// URL-safe alphabets are accepted, with or without padding, and whitespace
// anywhere (blobs get wrapped when pasted from terminals and web pages).
func Parse(blob string) (*Config, error) {
	data, err := decodeBase64(blob)
	if err != nil {
		return nil, err
	}
	return ParseJSON(data)
}

// ParseAny accepts either a base64 blob or its decoded JSON, as a config file
// may hold either.
func ParseAny(data []byte) (*Config, error) {
	data = bytes.TrimPrefix(bytes.TrimSpace(data), []byte("\xef\xbb\xbf")) // editors add a BOM
	if len(data) > 0 && data[0] == '{' {
		return ParseJSON(data)
	}
	return Parse(string(data))
}

// ParseJSON decodes and validates an already base64-decoded blob. Like
// Enapter's Python SDK, a blob with a "ucm_id" key is v1, anything else v3.
func ParseJSON(data []byte) (*Config, error) {
	top, err := decodeObject(data)
	if err != nil {
		return nil, err
	}
	var d decoder
	var c *Config
	if _, ok := top.fields["ucm_id"]; ok {
		c = d.v1(top)
	} else {
		c = d.v3(top)
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeBase64(blob string) ([]byte, error) {
	s := strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return -1
		case r == '-':
			return '+'
		case r == '_':
			return '/'
		}
		return r
	}, blob)
	s = strings.TrimRight(s, "=")
	if s == "" {
		return nil, fmt.Errorf("%w: the value is empty; %s", ErrInvalidBase64, hint)
	}
	data, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		// The decoder's own message is only an offset; ours says what to do.
		return nil, fmt.Errorf("%w (was it copied completely?); %s", ErrInvalidBase64, hint)
	}
	return data, nil
}

func decodeObject(data []byte) (object, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return object{}, fmt.Errorf("%w; %s", ErrInvalidJSON, hint)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		// encoding/json quotes the offending character; leave it out, it
		// could be part of a secret.
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return object{}, fmt.Errorf("%w (syntax error at byte %d); %s", ErrInvalidJSON, syntax.Offset, hint)
		}
		return object{}, fmt.Errorf("%w; %s", ErrInvalidJSON, hint)
	}
	return object{fields: fields}, nil
}

// object is one JSON object of a blob; path prefixes its keys in errors.
type object struct {
	fields map[string]json.RawMessage
	path   string
}

// decoder reads fields from objects and keeps the first problem met, so the
// v1 and v3 readers stay a flat list of fields.
type decoder struct {
	err error
}

func (d *decoder) fail(field, problem string) {
	if d.err == nil {
		d.err = &FieldError{Field: field, Problem: problem}
	}
}

func (o object) raw(key string) (json.RawMessage, bool) {
	raw, ok := o.fields[key]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// str returns "" for a missing key; Validate decides whether that matters.
func (d *decoder) str(o object, key string) string {
	raw, ok := o.raw(key)
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		d.fail(o.path+key, "must be a string")
	}
	return s
}

// port accepts a JSON number or a numeric string, as Python's int() does.
func (d *decoder) port(o object, key string) int {
	raw, ok := o.raw(key)
	if !ok {
		return 0 // Validate reports it, after the fields that come first
	}
	text := string(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		text = strings.TrimSpace(s)
	}
	n, err := strconv.Atoi(text)
	if err != nil {
		d.fail(o.path+key, portProblem)
	}
	return n
}

func (d *decoder) sub(o object, key string) object {
	sub := object{path: o.path + key + "."}
	raw, ok := o.raw(key)
	if !ok {
		return sub
	}
	if err := json.Unmarshal(raw, &sub.fields); err != nil {
		d.fail(o.path+key, "must be a JSON object")
	}
	return sub
}

func (d *decoder) v1(top object) *Config {
	c := &Config{
		Version:    Version1,
		HardwareID: d.str(top, "ucm_id"),
		ChannelID:  d.str(top, "channel_id"),
		Host:       d.str(top, "mqtt_host"),
		Port:       d.port(top, "mqtt_port"),
		CACert:     d.str(top, "mqtt_ca"),
		ClientCert: d.str(top, "mqtt_cert"),
		ClientKey:  d.str(top, "mqtt_private_key"),
	}
	// v1 has no protocol field: Enapter's v1 blobs always carry certificates,
	// and one without any can only mean a plain broker.
	c.Protocol = ProtocolMQTT
	if c.CACert != "" || c.ClientCert != "" || c.ClientKey != "" {
		c.Protocol = ProtocolMQTTS
	}
	return c
}

func (d *decoder) v3(top object) *Config {
	creds := d.sub(top, "mqtt_credentials")
	c := &Config{
		Version:    Version3,
		HardwareID: d.str(top, "hardware_id"),
		ChannelID:  d.str(top, "channel_id"),
		Host:       d.str(top, "mqtt_host"),
		Port:       d.port(top, "mqtt_port"),
		Username:   d.str(creds, "username"),
		Password:   d.str(creds, "password"),
		CACert:     d.str(creds, "ca_chain"),
		ClientCert: d.str(creds, "certificate"),
		ClientKey:  d.str(creds, "private_key"),
	}
	c.Protocol = d.protocol(d.str(top, "mqtt_protocol"), d.str(creds, "protocol"))
	return c
}

// protocol reconciles the two places a v3 blob may name its protocol.
func (d *decoder) protocol(top, creds string) Protocol {
	p := Protocol(strings.ToUpper(strings.TrimSpace(top)))
	q := Protocol(strings.ToUpper(strings.TrimSpace(creds)))
	switch {
	case p == "" && q == "":
		return "" // Validate reports it, after the fields that come first
	case p != "" && p != ProtocolMQTT && p != ProtocolMQTTS:
		d.fail("mqtt_protocol", protocolProblem)
	case q != "" && q != ProtocolMQTT && q != ProtocolMQTTS:
		d.fail("mqtt_credentials.protocol", protocolProblem)
	case p != "" && q != "" && p != q:
		d.fail("mqtt_credentials.protocol", fmt.Sprintf("says %s but mqtt_protocol says %s", q, p))
	case p == "":
		return q
	}
	return p
}
