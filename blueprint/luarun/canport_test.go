package luarun

import (
	"testing"
)

func TestParseCANPort(t *testing.T) {
	for in, want := range map[string]CANPort{
		"can-1=socketcan:can0":                               {Driver: "socketcan", Device: "can0"},
		"can-2=slcan:/dev/ttyACM0?bitrate=500000":            {Driver: "slcan", Device: "/dev/ttyACM0", Bitrate: 500000},
		"can-1=slcan:/dev/ttyUSB1?bitrate=250000&baud=57600": {Driver: "slcan", Device: "/dev/ttyUSB1", Bitrate: 250000, Baud: 57600},
	} {
		name, p, ok, err := ParseCANPort(in)
		if !ok || err != nil || name == "" || p != want {
			t.Errorf("%q: %q %+v %v %v", in, name, p, ok, err)
		}
	}
	// serial mappings are not CAN ones
	for _, serial := range []string{"rs485=/dev/ttyUSB0", "rs485=/dev/ttyUSB0?baud=19200", "can-1"} {
		if _, _, ok, _ := ParseCANPort(serial); ok {
			t.Errorf("%q taken for a CAN mapping", serial)
		}
	}
	for _, bad := range []string{
		"=socketcan:can0", "can-1=socketcan:", "can-1=socketcan:can0?bitrate=500000",
		"can-1=slcan:/dev/ttyACM0", "can-1=slcan:/dev/ttyACM0?bitrate=123", "can-1=slcan:/dev/ttyACM0?bitrate=500000&speed=1",
		"can-1=slcan:/dev/ttyACM0?bitrate=fast", "can-1=slcan:?bitrate=500000",
	} {
		if _, _, ok, err := ParseCANPort(bad); !ok || err == nil {
			t.Errorf("%q: ok %v, err %v", bad, ok, err)
		}
	}
}
