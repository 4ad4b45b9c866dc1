// Package ca is the hub's own certificate authority. Open creates it on the
// hub's first start (an ECDSA P-256 key and a self-signed certificate valid
// for ten years, kept as ca.pem and ca-key.pem in the data folder) and loads
// it on every later start. The CA signs the certificate of the hub's MQTTS
// listener and the client certificates that MQTTS communication configs
// carry; its certificate is the ca_chain of those configs.
//
// A CA is read-only after Open; its methods are safe for concurrent use.
package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"
)

// File names inside the folder given to Open.
const (
	CertFile = "ca.pem"
	KeyFile  = "ca-key.pem"
)

// Validity periods of what the CA signs.
const (
	// CAValidity is the lifetime of a new CA certificate.
	CAValidity = 10 * 365 * 24 * time.Hour
	// DeviceValidity is the lifetime of a device's client certificate.
	DeviceValidity = 2 * 365 * 24 * time.Hour
	// ServerValidity is the lifetime of a listener certificate. A new one is
	// made by every ServerCertificate call, i.e. on every hub start.
	ServerValidity = 2 * 365 * 24 * time.Hour

	// clockSkew backdates NotBefore so that a peer whose clock is a little
	// behind accepts a certificate made a moment ago.
	clockSkew = time.Hour
)

var (
	// ErrKeyPermissions means the CA key file can be read by the group or
	// by everyone; the error message says which chmod fixes it.
	ErrKeyPermissions = errors.New("ca key file is readable by other users")
	// ErrIncomplete means only one of ca.pem and ca-key.pem exists.
	ErrIncomplete = errors.New("ca files incomplete")
	// ErrInvalid means a CA file does not hold what it should, or the
	// certificate is not a usable CA (expired, key mismatch, not a CA).
	ErrInvalid = errors.New("invalid ca")
)

// CA is the hub's certificate authority.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	now     func() time.Time
}

// Open loads the CA kept in dir, or creates it when dir holds neither
// CertFile nor KeyFile. A missing dir is created with mode 0700, the key
// file with mode 0600. Open refuses a key file that the group or others may
// read (ErrKeyPermissions), a folder holding only one of the two files
// (ErrIncomplete) and files that are not a valid, unexpired CA (ErrInvalid).
func Open(dir string) (*CA, error) {
	if dir == "" {
		return nil, fmt.Errorf("ca: open: empty folder name: %w", ErrInvalid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca: open: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	certOK, err := exists(certPath)
	if err != nil {
		return nil, fmt.Errorf("ca: open: %w", err)
	}
	keyOK, err := exists(keyPath)
	if err != nil {
		return nil, fmt.Errorf("ca: open: %w", err)
	}
	switch {
	case certOK && keyOK:
		return load(certPath, keyPath)
	case !certOK && !keyOK:
		return create(certPath, keyPath)
	case certOK:
		return nil, fmt.Errorf("ca: open %s: %s is missing (restore it, or remove %s to create a new CA; devices then need new MQTTS configs): %w",
			dir, KeyFile, CertFile, ErrIncomplete)
	default:
		return nil, fmt.Errorf("ca: open %s: %s is missing (restore it, or remove %s to create a new CA; devices then need new MQTTS configs): %w",
			dir, CertFile, KeyFile, ErrIncomplete)
	}
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func load(certPath, keyPath string) (*CA, error) {
	if err := checkKeyMode(keyPath); err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("ca: load: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("ca: load: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("ca: load %s: no PEM certificate: %w", certPath, ErrInvalid)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: load %s: %v: %w", certPath, err, ErrInvalid)
	}
	// Never quote the key file's content or the parser's view of it.
	kblock, _ := pem.Decode(keyPEM)
	if kblock == nil {
		return nil, fmt.Errorf("ca: load %s: no PEM private key: %w", keyPath, ErrInvalid)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(kblock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: load %s: not a PKCS#8 private key: %w", keyPath, ErrInvalid)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("ca: load %s: not an ECDSA private key: %w", keyPath, ErrInvalid)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("ca: load: %s does not belong to %s: %w", keyPath, certPath, ErrInvalid)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("ca: load %s: not a CA certificate: %w", certPath, ErrInvalid)
	}
	if now := time.Now(); now.After(cert.NotAfter) {
		return nil, fmt.Errorf("ca: load %s: expired on %s (remove %s and %s to create a new CA; devices then need new MQTTS configs): %w",
			certPath, cert.NotAfter.Format(time.DateOnly), certPath, keyPath, ErrInvalid)
	}
	return newCA(cert, key), nil
}

// checkKeyMode refuses a key file that is group or world accessible. Windows
// has no such mode bits; there the folder's ACL is what protects the key.
func checkKeyMode(keyPath string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		return fmt.Errorf("ca: load: %w", err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		return fmt.Errorf("ca: %s has mode %04o, which lets other users read the CA key; run: chmod 600 %s: %w",
			keyPath, mode, keyPath, ErrKeyPermissions)
	}
	return nil
}

func create(certPath, keyPath string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: create: %w", err)
	}
	now := time.Now()
	host, _ := os.Hostname()
	name := "edk hub CA"
	if host != "" {
		name += " (" + host + ")"
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"edk"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("ca: create: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: create: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: create: %w", err)
	}
	// The key goes first: a crash in between leaves ErrIncomplete, which
	// Open reports, rather than a certificate whose key is lost.
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("ca: create: %w", err)
	}
	if err := writeNew(certPath, encodeCert(der), 0o644); err != nil {
		return nil, fmt.Errorf("ca: create: %w", err)
	}
	return newCA(cert, key), nil
}

// writeNew writes data to a temporary file beside path and links it into
// place, failing if path exists (another hub created the CA at the same
// moment), so that no reader ever sees a half-written file.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	// No hard links on this file system: create path exclusively instead.
	g, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := g.Write(data); err != nil {
		g.Close()
		return err
	}
	return g.Close()
}

func newCA(cert *x509.Certificate, key *ecdsa.PrivateKey) *CA {
	return &CA{cert: cert, certPEM: encodeCert(cert.Raw), key: key, now: time.Now}
}

// Certificate returns the CA certificate. The caller must not modify it.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// CertPEM returns the CA certificate in PEM: the ca_chain of the hub's
// MQTTS communication configs.
func (c *CA) CertPEM() []byte { return bytes.Clone(c.certPEM) }

// Pool returns a new pool holding only the CA certificate.
func (c *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(c.cert)
	return pool
}

// IssueDevice signs a new client certificate whose common name is the
// device's hardware id, valid for DeviceValidity, with a fresh ECDSA P-256
// key. It returns both in PEM (the key as PKCS#8) and the certificate's
// Fingerprint, which the store keeps to recognise the device.
func (c *CA) IssueDevice(hardwareID string) (certPEM, keyPEM []byte, fingerprint string, err error) {
	if hardwareID == "" {
		return nil, nil, "", fmt.Errorf("ca: issue device certificate: empty hardware id: %w", ErrInvalid)
	}
	tmpl := c.template(hardwareID, DeviceValidity)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	der, key, err := c.sign(tmpl)
	if err != nil {
		return nil, nil, "", fmt.Errorf("ca: issue certificate for %s: %w", hardwareID, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, "", fmt.Errorf("ca: issue certificate for %s: %w", hardwareID, err)
	}
	return encodeCert(der), keyPEM, fingerprintDER(der), nil
}

// ServerCertificate signs a new certificate, with a fresh key, for the hub's
// MQTTS listener. It names 127.0.0.1, ::1 and localhost plus hosts (IP
// addresses or DNS names) and is valid for ServerValidity. Its chain
// includes the CA certificate.
func (c *CA) ServerCertificate(hosts []string) (tls.Certificate, error) {
	tmpl := c.template("edk hub", ServerValidity)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range append([]string{"127.0.0.1", "::1", "localhost"}, hosts...) {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, key, err := c.sign(tmpl)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: issue server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: issue server certificate: %w", err)
	}
	return tls.Certificate{
		Certificate: [][]byte{der, c.cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// ServerTLSConfig returns the TLS settings of the hub's MQTTS listener: a
// ServerCertificate for hosts, TLS 1.2 or later, and a client certificate
// signed by this CA required from every client. Which device a certificate
// belongs to is for the auth hook to decide, from its Fingerprint.
func (c *CA) ServerTLSConfig(hosts []string) (*tls.Config, error) {
	cert, err := c.ServerCertificate(hosts)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.Pool(),
	}, nil
}

// Fingerprint returns the hex SHA-256 of the certificate's DER encoding, in
// lower case: how the store identifies a device's certificate.
func Fingerprint(cert *x509.Certificate) string { return fingerprintDER(cert.Raw) }

func fingerprintDER(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func (c *CA) template(commonName string, validity time.Duration) *x509.Certificate {
	now := c.now()
	notAfter := now.Add(validity)
	// A certificate outliving its CA would fail to verify at the end anyway.
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	return &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"edk"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func (c *CA) sign(tmpl *x509.Certificate) (der []byte, key *ecdsa.PrivateKey, err error) {
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, nil, err
	}
	return der, key, nil
}

// serial returns a random positive 127-bit serial number.
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) // crypto/rand does not fail
	return n.Add(n, big.NewInt(1))
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
