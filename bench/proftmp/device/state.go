package device

// State is the device's connection state.
type State int

const (
	StateStarting     State = iota // Run has not connected yet
	StateConnected                 // connected and subscribed: commands are taken
	StateDisconnected              // lost the broker; reconnecting
	StateStopped                   // Run has returned
)

func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateStopped:
		return "stopped"
	}
	return "unknown"
}
