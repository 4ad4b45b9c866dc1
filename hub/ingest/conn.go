// Device sessions: which connected client is which device, and the
// online/offline changes the next flush writes.

package ingest

import mqtt "github.com/mochi-mqtt/server/v2"

func (p *Pipeline) connected(cl *mqtt.Client) {
	if p.cfg.DeviceForClient == nil {
		return
	}
	id, ok := p.cfg.DeviceForClient(cl)
	if !ok || id == "" {
		return
	}
	now := p.cfg.Now()
	p.connMu.Lock()
	defer p.connMu.Unlock()
	p.clients[cl] = id
	p.conns[id]++
	if p.conns[id] == 1 {
		p.addConnEvent(connEvent{deviceID: id, online: true, at: now})
	}
}

func (p *Pipeline) disconnected(cl *mqtt.Client) {
	now := p.cfg.Now()
	p.connMu.Lock()
	defer p.connMu.Unlock()
	id, ok := p.clients[cl]
	if !ok {
		return
	}
	delete(p.clients, cl)
	// A device that reconnected with the same client id (a take-over) has
	// its new session established before the old one is gone: count
	// connections, and go offline only when the last one ends.
	// The entry stays at zero so that a message still queued from the
	// ended session does not mark the device online again.
	p.conns[id]--
	if p.conns[id] <= 0 {
		p.conns[id] = 0
		p.addConnEvent(connEvent{deviceID: id, online: false, at: now})
	}
}

// addConnEvent records a change for the next flush. Called with connMu held.
func (p *Pipeline) addConnEvent(e connEvent) {
	p.stat.connEvents.Add(1)
	p.connEvts = append(p.connEvts, e)
	p.connDirty = true
}

// online reports whether the device has a session open; known is false when
// no connection of it was ever mapped (no DeviceForClient, or anonymous).
func (p *Pipeline) online(deviceID string) (online, known bool) {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	n, ok := p.conns[deviceID]
	return ok && n > 0, ok
}

func (p *Pipeline) takeConnEvents() []connEvent {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	evts := p.connEvts
	p.connEvts, p.connDirty = nil, false
	return evts
}

func (p *Pipeline) connPending() bool {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	return p.connDirty
}

// connectedDevices counts the devices with an open connection.
func (p *Pipeline) connectedDevices() int {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	n := 0
	for _, c := range p.conns {
		if c > 0 {
			n++
		}
	}
	return n
}
