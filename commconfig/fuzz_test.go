package commconfig

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestTestdata(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		wantID    string
		wantField string // non-empty: the blob must fail on this field
	}{
		{"v3_mqtt.b64", "8E3D3A5C2B1F4A0E9D7C6B5A4F3E2D1C", ""},
		{"v3_mqtt_protocol_in_credentials.json", "8E3D3A5C2B1F4A0E9D7C6B5A4F3E2D1C", ""},
		// Placeholder PEMs keep real keys out of the repository; the
		// fuzz target adds generated certificate blobs.
		{"v3_mqtts_placeholder_pem.b64", "", "mqtt_credentials.ca_chain"},
		{"v1_placeholder_pem.b64", "", "mqtt_ca"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseAny(data)
			if tt.wantField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tt.wantField {
					t.Fatalf("ParseAny error = %v, want a FieldError on %q", err, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAny: %v", err)
			}
			if c.HardwareID != tt.wantID {
				t.Fatalf("HardwareID = %q, want %q", c.HardwareID, tt.wantID)
			}
		})
	}
}

// FuzzParse checks that no input panics and that whatever parses survives
// Encode and Parse unchanged.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	p := newPKI(f)
	f.Add([]byte(blob(f, v3CertDoc(p))))
	f.Add([]byte(blob(f, v1Doc(p))))
	f.Add([]byte(mustJSON(f, v3CertDoc(p))))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseAny(data)
		if err != nil {
			return
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("Encode of a parsed config: %v", err)
		}
		again, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(Encode()): %v", err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", fields(*again), fields(*c))
		}
	})
}
