package commconfig

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

type wireV3 struct {
	HardwareID  string            `json:"hardware_id"`
	ChannelID   string            `json:"channel_id"`
	Host        string            `json:"mqtt_host"`
	Port        int               `json:"mqtt_port"`
	Protocol    Protocol          `json:"mqtt_protocol"`
	Credentials map[string]string `json:"mqtt_credentials"`
}

type wireV1 struct {
	UCMID      string `json:"ucm_id"`
	ChannelID  string `json:"channel_id"`
	Host       string `json:"mqtt_host"`
	Port       int    `json:"mqtt_port"`
	CACert     string `json:"mqtt_ca"`
	ClientCert string `json:"mqtt_cert"`
	ClientKey  string `json:"mqtt_private_key"`
}

// Encode validates c and returns it as a blob (base64 of JSON) that Parse
// and Enapter's SDKs read. A Version3 config gives a v3 blob, the kind the hub
// hands out; a Version1 config gives a v1 blob, so that nothing is lost.
func (c Config) Encode() (string, error) {
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("encode: %w", err)
	}
	var doc any
	if c.Version == Version1 {
		if c.Username != "" || c.Password != "" {
			return "", fmt.Errorf("encode: %w", &FieldError{Field: "username", Problem: "a v1 config has no place for a username or password; use version 3"})
		}
		doc = wireV1{c.HardwareID, c.ChannelID, c.Host, c.Port, c.CACert, c.ClientCert, c.ClientKey}
	} else {
		doc = wireV3{c.HardwareID, c.ChannelID, c.Host, c.Port, c.Protocol, c.credentials()}
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("encode: %w", err)
	}
	return base64.StdEncoding.EncodeToString(data), nil
}

// credentials always writes the keys Enapter's Python SDK requires for the
// protocol (it fails on a missing one, even if empty), plus any other field
// that is set, so that Encode then Parse gives back the same Config.
func (c Config) credentials() map[string]string {
	all := map[string]string{
		"username":    c.Username,
		"password":    c.Password,
		"ca_chain":    c.CACert,
		"certificate": c.ClientCert,
		"private_key": c.ClientKey,
	}
	required := []string{"username", "password"}
	if c.Protocol == ProtocolMQTTS {
		required = []string{"ca_chain", "certificate", "private_key"}
	}
	creds := make(map[string]string)
	for k, v := range all {
		if v != "" {
			creds[k] = v
		}
	}
	for _, k := range required {
		creds[k] = all[k]
	}
	return creds
}
