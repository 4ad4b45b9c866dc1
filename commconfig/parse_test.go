package commconfig

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	mqtt := Config{
		Version: Version3, HardwareID: "HW0123456789", ChannelID: "ch1",
		Host: "192.168.1.10", Port: 1883, Protocol: ProtocolMQTT,
		Username: "device-user", Password: "device-pass",
	}
	mqtts := p.mqttsConfig()
	v1 := Config{
		Version: Version1, HardwareID: "UCM0123456789", ChannelID: "ucm-ch",
		Host: "mqtt.example.com", Port: 8883, Protocol: ProtocolMQTTS,
		CACert: p.ca.certPEM, ClientCert: p.client.certPEM, ClientKey: p.client.keyPEM,
	}
	change := func(c Config, mod func(*Config)) Config { mod(&c); return c }
	rawV3, _ := json.Marshal(v3Doc())

	tests := []struct {
		name string
		blob string
		want Config
	}{
		{"v3 password", blob(t, v3Doc()), mqtt},
		{"v3 certificates", blob(t, v3CertDoc(p)), mqtts},
		{"v1 certificates", blob(t, v1Doc(p)), v1},
		{"v3 protocol only in credentials", blob(t, with(v3Doc(), func(m map[string]any) {
			delete(m, "mqtt_protocol")
			creds(m)["protocol"] = "MQTT"
		})), mqtt},
		{"v3 certificates protocol only in credentials", blob(t, with(v3CertDoc(p), func(m map[string]any) {
			delete(m, "mqtt_protocol")
			creds(m)["protocol"] = "MQTTS"
		})), mqtts},
		{"v3 protocol in both places", blob(t, with(v3Doc(), func(m map[string]any) {
			creds(m)["protocol"] = "MQTT"
		})), mqtt},
		{"v3 lower-case protocol", blob(t, with(v3Doc(), func(m map[string]any) {
			m["mqtt_protocol"] = "mqtt"
		})), mqtt},
		{"v3 port as numeric string", blob(t, with(v3Doc(), func(m map[string]any) {
			m["mqtt_port"] = "1883"
		})), mqtt},
		{"v3 anonymous without credentials", blob(t, with(v3Doc(), func(m map[string]any) {
			delete(m, "mqtt_credentials")
		})), change(mqtt, func(c *Config) { c.Username, c.Password = "", "" })},
		{"v3 unknown and time_sync fields ignored", blob(t, with(v3Doc(), func(m map[string]any) {
			m["time_sync_host"] = "ntp.example.com"
			m["time_sync_port"] = 123
			m["something_new"] = map[string]any{"x": 1}
		})), mqtt},
		{"v3 IPv6 host", blob(t, with(v3Doc(), func(m map[string]any) {
			m["mqtt_host"] = "fd00::1"
		})), change(mqtt, func(c *Config) { c.Host = "fd00::1" })},
		{"v1 without certificates is MQTT", blob(t, with(v1Doc(p), func(m map[string]any) {
			delete(m, "mqtt_ca")
			delete(m, "mqtt_cert")
			delete(m, "mqtt_private_key")
		})), change(v1, func(c *Config) {
			c.Protocol, c.CACert, c.ClientCert, c.ClientKey = ProtocolMQTT, "", "", ""
		})},
		{"ucm_id wins over hardware_id as in the Python SDK", blob(t, with(v1Doc(p), func(m map[string]any) {
			m["hardware_id"] = "ignored"
		})), v1},
		{"url-safe unpadded", base64.RawURLEncoding.EncodeToString(rawV3), mqtt},
		{"url-safe padded", base64.URLEncoding.EncodeToString(rawV3), mqtt},
		{"standard unpadded", base64.RawStdEncoding.EncodeToString(rawV3), mqtt},
		{"wrapped and surrounded by whitespace", "\n  " + wrap(blob(t, v3Doc()), 76) + "\r\n\t", mqtt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.blob)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("Parse:\n got %+v\nwant %+v", fields(*got), fields(tt.want))
			}
			enc, err := got.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			again, err := Parse(enc)
			if err != nil {
				t.Fatalf("Parse(Encode()): %v", err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", fields(*again), fields(*got))
			}
		})
	}
}

// fields shows a Config's fields for a test failure, bypassing its
// redacting Format; test secrets are throwaway.
func fields(c Config) map[string]any {
	type plain Config
	var m map[string]any
	data, _ := json.Marshal(plain(c))
	_ = json.Unmarshal(data, &m)
	return m
}

func wrap(s string, width int) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width] + "\n")
		s = s[width:]
	}
	b.WriteString(s)
	return b.String()
}

func TestParseAny(t *testing.T) {
	t.Parallel()
	raw, err := json.Marshal(v3Doc())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"raw JSON", raw},
		{"raw JSON with BOM and newline", append([]byte("\xef\xbb\xbf"), append(raw, '\n')...)},
		{"base64", []byte(base64.StdEncoding.EncodeToString(raw))},
		{"base64 with trailing newline", []byte(base64.StdEncoding.EncodeToString(raw) + "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAny(tt.data)
			if err != nil {
				t.Fatalf("ParseAny: %v", err)
			}
			if got.HardwareID != "HW0123456789" || got.Password != "device-pass" {
				t.Fatalf("ParseAny = %+v", fields(*got))
			}
		})
	}
}

func TestParseJSONDetectsVersion(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	for name, doc := range map[string]map[string]any{"v1": v1Doc(p), "v3": v3Doc()} {
		data, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseJSON(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := map[string]Version{"v1": Version1, "v3": Version3}[name]; c.Version != want {
			t.Errorf("%s: Version = %d, want %d", name, c.Version, want)
		}
	}
}

func TestParseFieldErrors(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := newPKI(t)
	del := func(key string) func(map[string]any) { return func(m map[string]any) { delete(m, key) } }
	set := func(key string, v any) func(map[string]any) { return func(m map[string]any) { m[key] = v } }
	delCred := func(key string) func(map[string]any) { return func(m map[string]any) { delete(creds(m), key) } }
	setCred := func(key string, v any) func(map[string]any) {
		return func(m map[string]any) { creds(m)[key] = v }
	}

	tests := []struct {
		name  string
		doc   map[string]any
		field string
	}{
		{"empty object reports the first field", map[string]any{}, "hardware_id"},
		{"v3 missing hardware_id", with(v3Doc(), del("hardware_id")), "hardware_id"},
		{"v3 empty hardware_id", with(v3Doc(), set("hardware_id", "")), "hardware_id"},
		{"v3 null hardware_id", with(v3Doc(), set("hardware_id", nil)), "hardware_id"},
		{"v3 missing channel_id", with(v3Doc(), del("channel_id")), "channel_id"},
		{"v3 missing mqtt_host", with(v3Doc(), del("mqtt_host")), "mqtt_host"},
		{"v3 missing mqtt_port", with(v3Doc(), del("mqtt_port")), "mqtt_port"},
		{"v3 missing mqtt_protocol", with(v3Doc(), del("mqtt_protocol")), "mqtt_protocol"},
		{"v3 missing ca_chain", with(v3CertDoc(p), delCred("ca_chain")), "mqtt_credentials.ca_chain"},
		{"v3 missing certificate", with(v3CertDoc(p), delCred("certificate")), "mqtt_credentials.certificate"},
		{"v3 missing private_key", with(v3CertDoc(p), delCred("private_key")), "mqtt_credentials.private_key"},
		{"v3 MQTTS without credentials", with(v3CertDoc(p), del("mqtt_credentials")), "mqtt_credentials.ca_chain"},
		{"v1 missing ucm_id value", with(v1Doc(p), set("ucm_id", "")), "ucm_id"},
		{"v1 missing channel_id", with(v1Doc(p), del("channel_id")), "channel_id"},
		{"v1 missing mqtt_host", with(v1Doc(p), del("mqtt_host")), "mqtt_host"},
		{"v1 missing mqtt_port", with(v1Doc(p), del("mqtt_port")), "mqtt_port"},
		{"v1 missing mqtt_ca", with(v1Doc(p), del("mqtt_ca")), "mqtt_ca"},
		{"v1 missing mqtt_cert", with(v1Doc(p), del("mqtt_cert")), "mqtt_cert"},
		{"v1 missing mqtt_private_key", with(v1Doc(p), del("mqtt_private_key")), "mqtt_private_key"},

		{"port not numeric string", with(v3Doc(), set("mqtt_port", "abc")), "mqtt_port"},
		{"port zero", with(v3Doc(), set("mqtt_port", 0)), "mqtt_port"},
		{"port too big", with(v3Doc(), set("mqtt_port", 70000)), "mqtt_port"},
		{"port negative", with(v3Doc(), set("mqtt_port", -1)), "mqtt_port"},
		{"port fraction", with(v3Doc(), set("mqtt_port", 1883.5)), "mqtt_port"},
		{"port bool", with(v3Doc(), set("mqtt_port", true)), "mqtt_port"},
		{"port overflow", with(v3Doc(), set("mqtt_port", "99999999999999999999999")), "mqtt_port"},
		{"v1 port zero string", with(v1Doc(p), set("mqtt_port", "0")), "mqtt_port"},
		{"hardware_id number", with(v3Doc(), set("hardware_id", 42)), "hardware_id"},
		{"password number", with(v3Doc(), setCred("password", 1234)), "mqtt_credentials.password"},
		{"credentials not an object", with(v3Doc(), set("mqtt_credentials", "user:pass")), "mqtt_credentials"},

		{"hardware_id with slash", with(v3Doc(), set("hardware_id", "a/b")), "hardware_id"},
		{"hardware_id with plus", with(v3Doc(), set("hardware_id", "a+b")), "hardware_id"},
		{"hardware_id with hash", with(v3Doc(), set("hardware_id", "a#")), "hardware_id"},
		{"channel_id with slash", with(v3Doc(), set("channel_id", "x/y")), "channel_id"},
		{"channel_id with plus", with(v3Doc(), set("channel_id", "+")), "channel_id"},
		{"channel_id with hash", with(v3Doc(), set("channel_id", "#")), "channel_id"},
		{"ucm_id with slash", with(v1Doc(p), set("ucm_id", "u/1")), "ucm_id"},
		{"host with space", with(v3Doc(), set("mqtt_host", "my host")), "mqtt_host"},

		{"unknown protocol", with(v3Doc(), set("mqtt_protocol", "WSS")), "mqtt_protocol"},
		{"unknown protocol in credentials", with(v3Doc(), setCred("protocol", "WSS")), "mqtt_credentials.protocol"},
		{"protocols disagree", with(v3Doc(), setCred("protocol", "MQTTS")), "mqtt_credentials.protocol"},
		{"protocol not a string", with(v3Doc(), set("mqtt_protocol", 1)), "mqtt_protocol"},

		{"ca_chain not PEM", with(v3CertDoc(p), setCred("ca_chain", "not a certificate")), "mqtt_credentials.ca_chain"},
		{"ca_chain holds a key", with(v3CertDoc(p), setCred("ca_chain", p.client.keyPEM)), "mqtt_credentials.ca_chain"},
		{"certificate not PEM", with(v3CertDoc(p), setCred("certificate", "garbage")), "mqtt_credentials.certificate"},
		{"certificate holds a key", with(v3CertDoc(p), setCred("certificate", p.client.keyPEM)), "mqtt_credentials.certificate"},
		{"private_key not PEM", with(v3CertDoc(p), setCred("private_key", "garbage")), "mqtt_credentials.private_key"},
		{"private_key of another cert", with(v3CertDoc(p), setCred("private_key", other.client.keyPEM)), "mqtt_credentials.private_key"},
		{"v1 mqtt_private_key of another cert", with(v1Doc(p), set("mqtt_private_key", other.client.keyPEM)), "mqtt_private_key"},
		{"v1 mqtt_ca blank", with(v1Doc(p), set("mqtt_ca", " \n")), "mqtt_ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(blob(t, tt.doc))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse() = %v, %v; want a *FieldError", c, err)
			}
			if fe.Field != tt.field {
				t.Fatalf("Field = %q, want %q (error: %v)", fe.Field, tt.field, err)
			}
			if want := `communication config: field "` + tt.field + `": `; !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error %q does not start with %q", err, want)
			}
		})
	}
}

func TestParsePortMessage(t *testing.T) {
	t.Parallel()
	_, err := Parse(blob(t, with(v3Doc(), func(m map[string]any) { m["mqtt_port"] = 70000 })))
	const want = `communication config: field "mqtt_port": must be a number between 1 and 65535`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestParseDecodeErrors(t *testing.T) {
	t.Parallel()
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name string
		blob string
		want error
	}{
		{"empty", "", ErrInvalidBase64},
		{"only whitespace", " \n\t", ErrInvalidBase64},
		{"not base64", "this is not base64!", ErrInvalidBase64},
		{"impossible length", "abcde", ErrInvalidBase64},
		{"base64 of text", b64([]byte("hello")), ErrInvalidJSON},
		{"truncated JSON", b64([]byte(`{"hardware_id": "HW`)), ErrInvalidJSON},
		{"JSON array", b64([]byte(`[1, 2]`)), ErrInvalidJSON},
		{"JSON null", b64([]byte(`null`)), ErrInvalidJSON},
		{"JSON string", b64([]byte(`"abc"`)), ErrInvalidJSON},
		{"trailing garbage", b64([]byte(`{"a":1} x`)), ErrInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tt.blob)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse() error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), hint) {
				t.Fatalf("error %q does not say what to do", err)
			}
		})
	}
}
