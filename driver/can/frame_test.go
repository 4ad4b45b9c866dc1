package can

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestNewFrame(t *testing.T) {
	f, err := NewFrame(0x7FF, []byte{1})
	if err != nil || f.Extended || f.Len != 1 {
		t.Errorf("0x7FF: %+v %v", f, err)
	}
	f, err = NewFrame(0x800, nil)
	if err != nil || !f.Extended {
		t.Errorf("0x800 is extended: %+v %v", f, err)
	}
	for _, tc := range []struct {
		name string
		id   uint32
		data []byte
		want string
	}{
		{"id over 29 bits", MaxExtendedID + 1, nil, "29 bits"},
		{"9 bytes", 1, make([]byte, 9), "9 data bytes"},
		{"300 bytes", 1, make([]byte, 300), "300 data bytes"},
	} {
		if _, err := NewFrame(tc.id, tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := (Frame{ID: 0x800}).Validate(); err == nil || !strings.Contains(err.Error(), "11 bits") {
		t.Errorf("standard 0x800: %v", err)
	}
}

func TestCANFrameCodec(t *testing.T) {
	for _, f := range []Frame{
		{ID: 0x123, Len: 3, Data: []byte{1, 2, 3}},
		{ID: 0x1ABCDEF0, Extended: true, Len: 8, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{ID: 0, Len: 0, Data: []byte{}},
		{ID: 0x7FF, Remote: true, Len: 4},
	} {
		b := encodeCANFrame(f)
		got, err := decodeCANFrame(b[:])
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		if got.ID != f.ID || got.Extended != f.Extended || got.Remote != f.Remote || got.Len != f.Len || !bytes.Equal(got.Data, f.Data) {
			t.Errorf("round trip: %v → %v", f, got)
		}
	}
	// the id word carries the flags, the length byte the length
	b := encodeCANFrame(Frame{ID: 0x1ABCDEF0, Extended: true, Len: 1, Data: []byte{0xAA}})
	if b[4] != 1 || b[8] != 0xAA || binary.NativeEndian.Uint32(b[:4]) != 0x9ABCDEF0 {
		t.Errorf("layout: % X", b)
	}
	errFrame := make([]byte, canFrameSize)
	binary.NativeEndian.PutUint32(errFrame, canERRFlag|1)
	tooLong := make([]byte, canFrameSize)
	tooLong[4] = 9
	for name, raw := range map[string][]byte{
		"short (truncated)": make([]byte, 8),
		"CAN FD size":       make([]byte, 72),
		"error frame":       errFrame,
		"length 9":          tooLong,
	} {
		if _, err := decodeCANFrame(raw); err == nil {
			t.Errorf("%s decoded", name)
		}
	}
}
