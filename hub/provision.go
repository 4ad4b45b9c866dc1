package hub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub/ca"
	"github.com/edk-go/edk/hub/store"
)

// Provisioner issues device credentials and the communication configs
// that carry them: a fresh password for MQTT, a client certificate from the
// hub's CA for MQTTS. Generating a config again rotates the credential.
type Provisioner struct {
	Store *store.Store
	CA    *ca.CA
	// MQTTAddr and MQTTSAddr are the host:port devices should dial; the
	// host is what the configs name.
	MQTTAddr, MQTTSAddr string
	// External is set when devices connect to an external broker, which
	// does its own authentication: configs then carry DeviceUsername and
	// DevicePassword (possibly empty) instead of per-device credentials.
	External                       bool
	DeviceUsername, DevicePassword string
}

// GenerateConfig returns a v3 communication config for the device.
func (p *Provisioner) GenerateConfig(ctx context.Context, deviceID string, protocol commconfig.Protocol) (*commconfig.Config, error) {
	dev, err := p.Store.GetDevice(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	cfg := &commconfig.Config{Version: commconfig.Version3, HardwareID: dev.HardwareID, ChannelID: dev.ChannelID, Protocol: protocol}
	switch protocol {
	case commconfig.ProtocolMQTT:
		if cfg.Host, cfg.Port, err = splitAddr(p.MQTTAddr); err != nil {
			return nil, err
		}
		if p.External {
			cfg.Username, cfg.Password = p.DeviceUsername, p.DevicePassword
			return cfg, nil
		}
		password, err := randomSecret()
		if err != nil {
			return nil, err
		}
		if err := p.Store.SetGeneratedPassword(ctx, dev.ID, dev.HardwareID, password); err != nil {
			return nil, err
		}
		cfg.Username, cfg.Password = dev.HardwareID, password
	case commconfig.ProtocolMQTTS:
		if p.MQTTSAddr == "" {
			return nil, fmt.Errorf("%w: this hub has no MQTTS listener", store.ErrInvalid)
		}
		if cfg.Host, cfg.Port, err = splitAddr(p.MQTTSAddr); err != nil {
			return nil, err
		}
		cert, key, fingerprint, err := p.CA.IssueDevice(dev.HardwareID)
		if err != nil {
			return nil, fmt.Errorf("issue a certificate for %s: %w", dev.HardwareID, err)
		}
		if err := p.Store.SetCertFingerprint(ctx, dev.ID, fingerprint); err != nil {
			return nil, err
		}
		cfg.CACert, cfg.ClientCert, cfg.ClientKey = string(p.CA.CertPEM()), string(cert), string(key)
	default:
		return nil, fmt.Errorf("%w: protocol %q: want MQTT or MQTTS", store.ErrInvalid, protocol)
	}
	return cfg, nil
}

func splitAddr(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", addr, err)
	}
	return host, n, nil
}

// randomSecret returns 24 random bytes as URL-safe base64.
func randomSecret() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate a secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
