package srcaddr

import "testing"

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:51234":             "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:1883": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":    "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:1883":     "192.0.2.7",
		"[::1]:1883":                  "::/64",
		"pipe":                        "pipe",
	} {
		if got := Key(in); got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
}
