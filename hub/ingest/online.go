package ingest

// Online reports whether the device has an MQTT session open on the broker
// now; known is false when none of its sessions was ever seen (no
// DeviceForClient, an anonymous client, or not connected since the
// pipeline started). It is the live view that the stored connectivity
// follows a flush later: the API refuses commands to offline devices on it.
func (p *Pipeline) Online(deviceID string) (online, known bool) { return p.online(deviceID) }
