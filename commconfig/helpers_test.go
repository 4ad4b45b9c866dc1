package commconfig

import (
	"encoding/base64"
	"encoding/json"
	"testing"
)

// blob encodes doc as Enapter does: standard base64 of JSON.
func blob(t testing.TB, doc map[string]any) string {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(data)
}

func v3Doc() map[string]any {
	return map[string]any{
		"hardware_id":   "HW0123456789",
		"channel_id":    "ch1",
		"mqtt_host":     "192.168.1.10",
		"mqtt_port":     1883,
		"mqtt_protocol": "MQTT",
		"mqtt_credentials": map[string]any{
			"username": "device-user",
			"password": "device-pass",
		},
	}
}

func v3CertDoc(p testPKI) map[string]any {
	return map[string]any{
		"hardware_id":   "HW0123456789",
		"channel_id":    "ch1",
		"mqtt_host":     "gateway.local",
		"mqtt_port":     8883,
		"mqtt_protocol": "MQTTS",
		"mqtt_credentials": map[string]any{
			"ca_chain":    p.ca.certPEM,
			"certificate": p.client.certPEM,
			"private_key": p.client.keyPEM,
		},
	}
}

func v1Doc(p testPKI) map[string]any {
	return map[string]any{
		"ucm_id":           "UCM0123456789",
		"channel_id":       "ucm-ch",
		"mqtt_host":        "mqtt.example.com",
		"mqtt_port":        8883,
		"mqtt_ca":          p.ca.certPEM,
		"mqtt_cert":        p.client.certPEM,
		"mqtt_private_key": p.client.keyPEM,
	}
}

func creds(doc map[string]any) map[string]any {
	return doc["mqtt_credentials"].(map[string]any)
}

// with applies mod to doc and returns doc, so a table case reads as one expression.
func with(doc map[string]any, mod func(map[string]any)) map[string]any {
	mod(doc)
	return doc
}
