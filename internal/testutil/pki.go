package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// WrongHostName is the only name in PKI's wrong-host server certificate: a
// name no test dials, for checking that strict host-name verification fails
// where the default (CA check only, as in Enapter's SDK) passes.
const WrongHostName = "wrong-host.invalid"

// PKI is a throwaway certificate authority with certificates issued by it, all
// ECDSA P-256 in PEM, also written to files in a test's temporary directory
// (mosquitto reads files). Keys are PKCS #8.
type PKI struct {
	CACertPEM, CAKeyPEM []byte
	// ServerCertPEM is valid for 127.0.0.1, ::1 and localhost.
	ServerCertPEM, ServerKeyPEM []byte
	// WrongHostCertPEM is valid only for WrongHostName.
	WrongHostCertPEM, WrongHostKeyPEM []byte

	CAFile, ServerCertFile, ServerKeyFile string
	WrongHostCertFile, WrongHostKeyFile   string

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// NewPKI creates a CA, a server certificate and a wrong-host server
// certificate, valid from an hour ago for a day.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	caKey := newKey(t)
	caTmpl := template(t, "edk test CA")
	caTmpl.IsCA = true
	caTmpl.BasicConstraintsValid = true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	p := &PKI{ca: ca, caKey: caKey, CACertPEM: certPEM(caDER), CAKeyPEM: keyPEM(t, caKey)}

	srv := template(t, "localhost")
	srv.DNSNames = []string{"localhost"}
	srv.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	srv.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	p.ServerCertPEM, p.ServerKeyPEM = p.issue(t, srv)

	wrong := template(t, WrongHostName)
	wrong.DNSNames = []string{WrongHostName}
	wrong.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	p.WrongHostCertPEM, p.WrongHostKeyPEM = p.issue(t, wrong)

	dir := t.TempDir()
	p.CAFile = writeFile(t, dir, "ca.pem", p.CACertPEM)
	p.ServerCertFile = writeFile(t, dir, "server.pem", p.ServerCertPEM)
	p.ServerKeyFile = writeFile(t, dir, "server-key.pem", p.ServerKeyPEM)
	p.WrongHostCertFile = writeFile(t, dir, "wrong-host.pem", p.WrongHostCertPEM)
	p.WrongHostKeyFile = writeFile(t, dir, "wrong-host-key.pem", p.WrongHostKeyPEM)
	return p
}

// IssueClient issues a client certificate for commonName, signed by the CA.
func (p *PKI) IssueClient(t testing.TB, commonName string) (certPEM, keyPEM []byte) {
	t.Helper()
	tmpl := template(t, commonName)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return p.issue(t, tmpl)
}

// CertPool returns a pool holding only the CA.
func (p *PKI) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

// ServerTLSConfig serves the server certificate and requires a client
// certificate issued by the CA.
func (p *PKI) ServerTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	return &tls.Config{
		Certificates: []tls.Certificate{keyPair(t, p.ServerCertPEM, p.ServerKeyPEM)},
		ClientCAs:    p.CertPool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLSConfig trusts the CA and presents a new client certificate for
// commonName.
func (p *PKI) ClientTLSConfig(t testing.TB, commonName string) *tls.Config {
	t.Helper()
	cert, key := p.IssueClient(t, commonName)
	return &tls.Config{
		RootCAs:      p.CertPool(),
		Certificates: []tls.Certificate{keyPair(t, cert, key)},
		MinVersion:   tls.VersionTLS12,
	}
}

func (p *PKI) issue(t testing.TB, tmpl *x509.Certificate) (certPEMBytes, keyPEMBytes []byte) {
	t.Helper()
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatalf("issue certificate for %s: %v", tmpl.Subject.CommonName, err)
	}
	return certPEM(der), keyPEM(t, key)
}

func template(t testing.TB, commonName string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("certificate serial: %v", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"edk tests"}},
		NotBefore:    now.Add(-time.Hour), // tolerate a slightly skewed clock
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return k
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func keyPair(t testing.TB, cert, key []byte) tls.Certificate {
	t.Helper()
	kp, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatalf("load key pair: %v", err)
	}
	return kp
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	return path
}
