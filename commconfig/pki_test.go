package commconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// testCert is a throwaway certificate with its key, in PEM and parsed form.
type testCert struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM string
	keyPEM  string
}

func (c testCert) tlsCert(t *testing.T, chain ...testCert) tls.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair([]byte(c.certPEM), []byte(c.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	for _, link := range chain {
		pair.Certificate = append(pair.Certificate, link.cert.Raw)
	}
	return pair
}

// newCert makes a P-256 certificate from tmpl, signed by parent (self-signed
// when parent is nil).
func newCert(t testing.TB, tmpl *x509.Certificate, parent *testCert) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber, err = rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{
		cert:    cert,
		key:     key,
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
	}
}

func newCA(t testing.TB, cn string, parent *testCert) testCert {
	t.Helper()
	return newCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, parent)
}

func newLeaf(t testing.TB, cn string, usage x509.ExtKeyUsage, ca testCert, dnsNames ...string) testCert {
	t.Helper()
	return newCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    dnsNames,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}, &ca)
}

// testPKI is a CA with a device (client) certificate, as Enapter issues them.
type testPKI struct {
	ca, client testCert
}

func newPKI(t testing.TB) testPKI {
	t.Helper()
	ca := newCA(t, "Test Enapter CA", nil)
	return testPKI{ca: ca, client: newLeaf(t, "test-device", x509.ExtKeyUsageClientAuth, ca)}
}

// mqttsConfig is a valid v3 MQTTS config built on p.
func (p testPKI) mqttsConfig() Config {
	return Config{
		Version:    Version3,
		HardwareID: "HW0123456789",
		ChannelID:  "ch1",
		Host:       "gateway.local",
		Port:       8883,
		Protocol:   ProtocolMQTTS,
		CACert:     p.ca.certPEM,
		ClientCert: p.client.certPEM,
		ClientKey:  p.client.keyPEM,
	}
}
