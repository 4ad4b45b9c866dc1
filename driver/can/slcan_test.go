package can

import (
	"bytes"
	"testing"
)

func TestSLCANLineCodec(t *testing.T) {
	for _, tc := range []struct {
		line string
		f    Frame
	}{
		{"t1232ABCD", Frame{ID: 0x123, Len: 2, Data: []byte{0xAB, 0xCD}}},
		{"t7FF0", Frame{ID: 0x7FF, Len: 0, Data: []byte{}}},
		{"T1ABCDEF080102030405060708", Frame{ID: 0x1ABCDEF0, Extended: true, Len: 8, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}},
	} {
		got, err := parseSLCANFrame([]byte(tc.line))
		if err != nil || got.ID != tc.f.ID || got.Extended != tc.f.Extended || !bytes.Equal(got.Data, tc.f.Data) {
			t.Errorf("parse %q = %v, %v; want %v", tc.line, got, err, tc.f)
		}
		if enc := encodeSLCANFrame(tc.f); enc != tc.line {
			t.Errorf("encode %v = %q, want %q", tc.f, enc, tc.line)
		}
	}
	// lower-case hex, a timestamp (Z1), remote frames
	for line, want := range map[string]Frame{
		"t1232abcd":     {ID: 0x123, Len: 2, Data: []byte{0xAB, 0xCD}},
		"t1232ABCD1F2E": {ID: 0x123, Len: 2, Data: []byte{0xAB, 0xCD}},
		"r1234":         {ID: 0x123, Remote: true, Len: 4},
		"R000001004":    {ID: 0x100, Extended: true, Remote: true, Len: 4},
	} {
		got, err := parseSLCANFrame([]byte(line))
		if err != nil || got.ID != want.ID || got.Remote != want.Remote || got.Len != want.Len || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("parse %q = %v, %v; want %v", line, got, err, want)
		}
	}
	for _, bad := range []string{"", "t", "t12", "t123", "tXYZ0", "t1239", "t123A", "t1232AB", "t1232ABCDE", "t1232ABZZ",
		"t8000", "T2000000000", "t1232ABCD12", "t1232ABCDXXXX", "T1234"} {
		if f, err := parseSLCANFrame([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %v", bad, f)
		}
	}
}

func TestCheckSLCANBitrate(t *testing.T) {
	if err := CheckSLCANBitrate(500000); err != nil {
		t.Error(err)
	}
	if err := CheckSLCANBitrate(500); err == nil {
		t.Error("500 bit/s accepted")
	}
}

func FuzzParseSLCANFrame(f *testing.F) {
	for _, s := range []string{"t1232ABCD", "T1ABCDEF080102030405060708", "r1234", "t1232ABCD1F2E", "t8000"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fr, err := parseSLCANFrame(line)
		if err != nil {
			return
		}
		if err := fr.Validate(); err != nil {
			t.Fatalf("%q parsed into an invalid frame %v: %v", line, fr, err)
		}
		if !fr.Remote {
			back, err := parseSLCANFrame([]byte(encodeSLCANFrame(fr)))
			if err != nil || back.ID != fr.ID || !bytes.Equal(back.Data, fr.Data) {
				t.Fatalf("%q: re-encoded frame %v parses as %v, %v", line, fr, back, err)
			}
		}
	})
}
