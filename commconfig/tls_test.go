package commconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// handshake runs a TLS handshake between a client using clientCfg and a
// server presenting serverCert (and requiring a client certificate from
// clientCA), over an in-memory pipe. It returns the client's error.
func handshake(t *testing.T, clientCfg *tls.Config, serverCert tls.Certificate, clientCA *x509.Certificate) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clientConn, serverConn := net.Pipe()
	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA)
	server := tls.Server(serverConn, &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientPool,
		MinVersion:   tls.VersionTLS12,
	})
	serverDone := make(chan error, 1)
	go func() {
		err := server.HandshakeContext(ctx)
		serverConn.Close()
		serverDone <- err
	}()
	client := tls.Client(clientConn, clientCfg)
	err := client.HandshakeContext(ctx)
	clientConn.Close()
	serverErr := <-serverDone
	if err == nil && serverErr != nil {
		t.Fatalf("client handshake succeeded but server failed: %v", serverErr)
	}
	return err
}

func TestTLSConfigHandshake(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	wrong := newPKI(t)
	serverCert := newLeaf(t, "broker", x509.ExtKeyUsageServerAuth, p.ca, "some-other-name")
	intermediate := newCA(t, "Test Intermediate", &p.ca)
	chainedServer := newLeaf(t, "broker", x509.ExtKeyUsageServerAuth, intermediate, "some-other-name")
	clientOnly := newLeaf(t, "not-a-server", x509.ExtKeyUsageClientAuth, p.ca, "some-other-name")

	right := p.mqttsConfig() // Host "gateway.local", not in the server certificate
	named := right
	named.Host = "some-other-name"
	wrongCA := right
	wrongCA.CACert = wrong.ca.certPEM
	wrongCANamed := named
	wrongCANamed.CACert = wrong.ca.certPEM

	tests := []struct {
		name    string
		cfg     Config
		strict  bool
		server  tls.Certificate
		wantErr bool
	}{
		{"non-strict accepts another name", right, false, serverCert.tlsCert(t), false},
		{"strict rejects another name", right, true, serverCert.tlsCert(t), true},
		{"strict accepts the right name", named, true, serverCert.tlsCert(t), false},
		{"non-strict rejects wrong CA", wrongCA, false, serverCert.tlsCert(t), true},
		{"non-strict rejects wrong CA with the right name", wrongCANamed, false, serverCert.tlsCert(t), true},
		// The right name, so that only the CA can be what fails: Go checks
		// the name first.
		{"strict rejects wrong CA", wrongCANamed, true, serverCert.tlsCert(t), true},
		{"non-strict follows intermediates", right, false, chainedServer.tlsCert(t, intermediate), false},
		{"non-strict rejects missing intermediate", right, false, chainedServer.tlsCert(t), true},
		{"non-strict rejects a client-only certificate", right, false, clientOnly.tlsCert(t), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := tt.cfg.TLSConfig(tt.strict)
			if err != nil {
				t.Fatalf("TLSConfig: %v", err)
			}
			if cfg.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
			}
			err = handshake(t, cfg, tt.server, p.ca.cert)
			t.Logf("client handshake: %v", err)
			if (err != nil) != tt.wantErr {
				t.Fatalf("handshake error = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestTLSConfigPlainMQTT(t *testing.T) {
	t.Parallel()
	c, err := Parse(blob(t, v3Doc()))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.TLSConfig(true)
	if cfg != nil || err != nil {
		t.Fatalf("TLSConfig() = %v, %v; want nil, nil", cfg, err)
	}
}

func TestTLSConfigInvalidMaterial(t *testing.T) {
	t.Parallel()
	c := newPKI(t).mqttsConfig()
	c.ClientKey = newPKI(t).client.keyPEM
	if _, err := c.TLSConfig(false); err == nil {
		t.Fatal("TLSConfig accepted a key that does not match the certificate")
	}
}

func TestBrokerURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		host     string
		port     int
		protocol Protocol
		want     string
	}{
		{"mqtt name", "gateway.local", 1883, ProtocolMQTT, "tcp://gateway.local:1883"},
		{"mqtts name", "mqtt.example.com", 8883, ProtocolMQTTS, "ssl://mqtt.example.com:8883"},
		{"ipv4", "192.168.1.10", 1883, ProtocolMQTT, "tcp://192.168.1.10:1883"},
		{"ipv6", "fd00::1", 8883, ProtocolMQTTS, "ssl://[fd00::1]:8883"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Config{Host: tt.host, Port: tt.port, Protocol: tt.protocol}
			if got := c.BrokerURL(); got != tt.want {
				t.Fatalf("BrokerURL() = %q, want %q", got, tt.want)
			}
		})
	}
}
