package mqttapi

import (
	"bytes"
	"testing"
)

// FuzzFastCommandRequestDecoder checks that the one-pass decoder agrees
// with the field-by-field one on every input it accepts.
func FuzzFastCommandRequestDecoder(f *testing.F) {
	for _, s := range []string{
		`{"id":"1","name":"set_power","arguments":{"power":4700}}`,
		`{"id":"1","name":"n","arguments":null}`,
		`{ "id" : "a" , "name" : "b" , "arguments" : { "x" : [1, {"y": "}"}] } }`,
		`{"id":"a","id":"b","name":"c"}`,
		`{"ID":"a","name":"c"}`,
		`{"id":"a\"b","name":"c"}`,
		`{"x":{"id":"no"},"id":"yes","name":"n"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeCommandRequestFast(b)
		if !ok {
			return
		}
		slow, err := decodeCommandRequestSlow(b)
		if err != nil {
			t.Fatalf("fast decoder accepted %q, slow one refused it: %v", b, err)
		}
		if fast.ID != slow.ID || fast.Name != slow.Name || !bytes.Equal(fast.Arguments, slow.Arguments) {
			t.Fatalf("decoders disagree on %q:\nfast %+v\nslow %+v", b, fast, slow)
		}
	})
}
