package luarun

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/edk-go/edk/driver/can"
)

// CANPort is a host CAN bus standing in for a UCM CAN port (can.new).
type CANPort struct {
	Driver  string // "socketcan" or "slcan"
	Device  string // a SocketCAN interface (can0) or an slcan serial device
	Bitrate int    // slcan: the CAN bitrate edk sets on the adapter
	Baud    int    // slcan: the serial line speed (0: can.DefaultSLCANBaud)
}

// ParseCANPort parses the CAN form of --port: NAME=socketcan:IFACE or
// NAME=slcan:DEVICE?bitrate=N[&baud=N], e.g. can-1=socketcan:can0 or
// can-1=slcan:/dev/ttyACM0?bitrate=500000. ok is false when s maps a
// serial port instead (see ParsePort).
func ParseCANPort(s string) (name string, p CANPort, ok bool, err error) {
	name, rest, found := strings.Cut(s, "=")
	driver, dev, hasDriver := strings.Cut(rest, ":")
	if !found || !hasDriver || (driver != "socketcan" && driver != "slcan") {
		return "", CANPort{}, false, nil
	}
	if name == "" {
		return "", CANPort{}, true, fmt.Errorf("port %q: want NAME=%s:…", s, driver)
	}
	dev, query, _ := strings.Cut(dev, "?")
	if dev == "" {
		return "", CANPort{}, true, fmt.Errorf("port %q: %s needs a device, e.g. %s", s, driver, map[string]string{"socketcan": "socketcan:can0", "slcan": "slcan:/dev/ttyACM0?bitrate=500000"}[driver])
	}
	p = CANPort{Driver: driver, Device: dev}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", CANPort{}, true, fmt.Errorf("port %q: %w", s, err)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		if driver == "socketcan" {
			return "", CANPort{}, true, fmt.Errorf("port %q: socketcan takes no settings (set the bitrate with ip link set %s type can bitrate N)", s, dev)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return "", CANPort{}, true, fmt.Errorf("port %q: %s must be a positive number", s, k)
		}
		switch k {
		case "bitrate":
			if err := can.CheckSLCANBitrate(n); err != nil {
				return "", CANPort{}, true, fmt.Errorf("port %q: %w", s, err)
			}
			p.Bitrate = n
		case "baud":
			p.Baud = n
		default:
			return "", CANPort{}, true, fmt.Errorf("port %q: unknown slcan setting %q (bitrate, baud)", s, k)
		}
	}
	if driver == "slcan" && p.Bitrate == 0 {
		return "", CANPort{}, true, fmt.Errorf("port %q: slcan needs the bus's bitrate, e.g. ?bitrate=500000", s)
	}
	return name, p, true, nil
}
