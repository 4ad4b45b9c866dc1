package commconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// TLSConfig returns the TLS settings for an MQTTS config, or nil, nil for
// plain MQTT. The client presents ClientCert and trusts only CACert.
//
// Enapter gateways are reached by IP address or a ".local" name that their
// certificates do not list, so Enapter's own SDK checks the chain but not the
// host name. With strict false edk does the same: the chain must lead to
// CACert, any name is accepted. With strict true the certificate must also
// name Host.
func (c Config) TLSConfig(strict bool) (*tls.Config, error) {
	if c.Protocol != ProtocolMQTTS {
		return nil, nil
	}
	m, err := c.loadTLS()
	if err != nil {
		return nil, fmt.Errorf("build tls config: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      m.roots,
		Certificates: []tls.Certificate{m.cert},
		ServerName:   c.Host, // also the SNI a broker behind a proxy may route on
	}
	if strict {
		return cfg, nil
	}
	// InsecureSkipVerify turns off Go's whole check; VerifyConnection puts
	// the chain check back, minus the host name.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyChain(cs.PeerCertificates, m.roots)
	}
	return cfg, nil
}

func verifyChain(certs []*x509.Certificate, roots *x509.CertPool) error {
	if len(certs) == 0 {
		return errors.New("broker sent no certificate")
	}
	intermediates := x509.NewCertPool()
	for _, cert := range certs[1:] {
		intermediates.AddCert(cert)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("verify broker certificate against the config's CA chain: %w", err)
	}
	return nil
}

type tlsMaterial struct {
	roots *x509.CertPool
	cert  tls.Certificate
}

// loadTLS parses the PEM fields. Its errors name the field and never quote
// the PEM, whose content may be a key pasted into the wrong field.
func (c Config) loadTLS() (*tlsMaterial, error) {
	n := c.names()
	for _, f := range []struct{ name, value, what string }{
		{n.ca, c.CACert, "the CA chain"},
		{n.cert, c.ClientCert, "the client certificate"},
		{n.key, c.ClientKey, "the private key"},
	} {
		if strings.TrimSpace(f.value) == "" {
			return nil, &FieldError{Field: f.name, Problem: "is missing; MQTTS needs " + f.what + " (PEM)"}
		}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(c.CACert)) {
		return nil, &FieldError{Field: n.ca, Problem: "must contain at least one PEM certificate"}
	}
	if len(parseCerts(c.ClientCert)) == 0 {
		return nil, &FieldError{Field: n.cert, Problem: "must be a PEM certificate"}
	}
	cert, err := tls.X509KeyPair([]byte(c.ClientCert), []byte(c.ClientKey))
	if err != nil {
		return nil, &FieldError{Field: n.key, Problem: "must be a PEM private key matching " + n.cert}
	}
	return &tlsMaterial{roots: roots, cert: cert}, nil
}

// parseCerts returns the certificates in a PEM text that parse, skipping
// anything else.
func parseCerts(text string) []*x509.Certificate {
	var certs []*x509.Certificate
	rest := []byte(text)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return certs
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
			certs = append(certs, cert)
		}
	}
}
