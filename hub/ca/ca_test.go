package ca_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/hub/ca"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t *testing.T, dir string) *ca.CA {
	t.Helper()
	c, err := ca.Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

func TestOpenCreatesAndReopens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first := open(t, dir)

	cert := first.Certificate()
	if !cert.IsCA || cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("CA certificate: IsCA=%v algorithm=%v", cert.IsCA, cert.PublicKeyAlgorithm)
	}
	if life := time.Until(cert.NotAfter); life < 9*365*24*time.Hour {
		t.Errorf("CA valid for %v, want about 10 years", life)
	}
	if runtime.GOOS != "windows" {
		for name, want := range map[string]os.FileMode{"": 0o700, ca.KeyFile: 0o600} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("mode of %q = %04o, want %04o", name, got, want)
			}
		}
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, ca.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, first.CertPEM()) {
		t.Error("CertPEM differs from ca.pem")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("folder holds %d entries, want ca.pem and ca-key.pem only", len(entries))
	}

	second := open(t, dir)
	if !bytes.Equal(first.CertPEM(), second.CertPEM()) {
		t.Fatal("reopening gave a different CA")
	}
	// A certificate issued by the first instance verifies against the second.
	certPEM, _, _, err := first.IssueDevice("HW1")
	if err != nil {
		t.Fatal(err)
	}
	verifyClient(t, second, certPEM)
}

func TestOpenRefusesReadableKey(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix mode bits")
	}
	dir := t.TempDir()
	open(t, dir)
	keyPath := filepath.Join(dir, ca.KeyFile)
	if err := os.Chmod(keyPath, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := ca.Open(dir)
	if !errors.Is(err, ca.ErrKeyPermissions) {
		t.Fatalf("Open = %v, want ErrKeyPermissions", err)
	}
	if want := "chmod 600 " + keyPath; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if err := os.Chmod(keyPath, 0o600); err != nil {
		t.Fatal(err)
	}
	open(t, dir)
}

func TestOpenIncompleteOrInvalid(t *testing.T) {
	t.Run("missing key", func(t *testing.T) {
		dir := t.TempDir()
		open(t, dir)
		if err := os.Remove(filepath.Join(dir, ca.KeyFile)); err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Open(dir); !errors.Is(err, ca.ErrIncomplete) {
			t.Fatalf("Open = %v, want ErrIncomplete", err)
		}
	})
	t.Run("missing certificate", func(t *testing.T) {
		dir := t.TempDir()
		open(t, dir)
		if err := os.Remove(filepath.Join(dir, ca.CertFile)); err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Open(dir); !errors.Is(err, ca.ErrIncomplete) {
			t.Fatalf("Open = %v, want ErrIncomplete", err)
		}
	})
	t.Run("key of another CA", func(t *testing.T) {
		a, b := t.TempDir(), t.TempDir()
		open(t, a)
		open(t, b)
		key, err := os.ReadFile(filepath.Join(b, ca.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a, ca.KeyFile), key, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = ca.Open(a)
		if !errors.Is(err, ca.ErrInvalid) {
			t.Fatalf("Open = %v, want ErrInvalid", err)
		}
		if strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("error quotes the key: %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		dir := t.TempDir()
		open(t, dir)
		if err := os.WriteFile(filepath.Join(dir, ca.CertFile), []byte("not pem"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Open(dir); !errors.Is(err, ca.ErrInvalid) {
			t.Fatalf("Open = %v, want ErrInvalid", err)
		}
	})
}

func verifyClient(t *testing.T, c *ca.CA, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: c.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatalf("device certificate does not verify: %v", err)
	}
	return cert
}

func TestIssueDevice(t *testing.T) {
	c := open(t, t.TempDir())
	certPEM, keyPEM, fp, err := c.IssueDevice("AB12CD")
	if err != nil {
		t.Fatal(err)
	}
	cert := verifyClient(t, c, certPEM)
	if cert.Subject.CommonName != "AB12CD" {
		t.Errorf("CN = %q, want the hardware id", cert.Subject.CommonName)
	}
	if life := time.Until(cert.NotAfter); life < 729*24*time.Hour || life > 731*24*time.Hour {
		t.Errorf("device certificate valid for %v, want 2 years", life)
	}
	if fp != ca.Fingerprint(cert) || len(fp) != 64 || strings.ToLower(fp) != fp {
		t.Errorf("fingerprint %q, Fingerprint(cert) %q", fp, ca.Fingerprint(cert))
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("certificate and key do not pair: %v", err)
	}
	_, _, fp2, err := c.IssueDevice("AB12CD")
	if err != nil {
		t.Fatal(err)
	}
	if fp2 == fp {
		t.Error("two certificates share a fingerprint")
	}
	if _, _, _, err := c.IssueDevice(""); !errors.Is(err, ca.ErrInvalid) {
		t.Errorf("IssueDevice(\"\") = %v, want ErrInvalid", err)
	}
}

func TestServerCertificateNames(t *testing.T) {
	c := open(t, t.TempDir())
	cert, err := c.ServerCertificate([]string{"hub.local", "192.168.1.7", "localhost", ""})
	if err != nil {
		t.Fatal(err)
	}
	opts := x509.VerifyOptions{Roots: c.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, name := range []string{"127.0.0.1", "::1", "localhost", "hub.local", "192.168.1.7"} {
		opts.DNSName = name
		if _, err := cert.Leaf.Verify(opts); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if got := cert.Leaf.DNSNames; len(got) != 2 {
		t.Errorf("DNS names %v, want localhost and hub.local once each", got)
	}
}

// handshake runs a TLS handshake over an in-memory pipe and returns the
// client's and the server's errors, and what the server saw.
//
//lint:ignore ST1008 both errors are results to compare, not a failure of handshake itself
func handshake(t *testing.T, server, client *tls.Config) (clientErr, serverErr error, st tls.ConnectionState) {
	t.Helper()
	sc, cc := net.Pipe()
	srv := tls.Server(sc, server)
	cli := tls.Client(cc, client)
	done := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err == nil {
			// Let the client finish reading the server's last flight.
			_, err = srv.Write([]byte("x"))
		}
		done <- err
		// Close the pipe, not the TLS conn: its close_notify would block
		// on the unbuffered pipe.
		sc.Close()
	}()
	clientErr = cli.Handshake()
	if clientErr == nil {
		buf := make([]byte, 1)
		_, clientErr = io.ReadFull(cli, buf)
	}
	cc.Close()
	serverErr = <-done
	return clientErr, serverErr, srv.ConnectionState()
}

func TestServerTLSConfigHandshake(t *testing.T) {
	c := open(t, t.TempDir())
	server, err := c.ServerTLSConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, fp, err := c.IssueDevice("HW42")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("device certificate", func(t *testing.T) {
		client := &tls.Config{RootCAs: c.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{pair}}
		cerr, serr, st := handshake(t, server, client)
		if cerr != nil || serr != nil {
			t.Fatalf("handshake: client %v, server %v", cerr, serr)
		}
		if len(st.PeerCertificates) == 0 || ca.Fingerprint(st.PeerCertificates[0]) != fp {
			t.Fatal("server did not see the device certificate")
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		client := &tls.Config{RootCAs: c.Pool(), ServerName: "127.0.0.1"}
		if _, serr, _ := handshake(t, server, client); serr == nil {
			t.Fatal("server accepted a client without certificate")
		}
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		other := open(t, t.TempDir())
		oc, ok, _, err := other.IssueDevice("HW42")
		if err != nil {
			t.Fatal(err)
		}
		opair, err := tls.X509KeyPair(oc, ok)
		if err != nil {
			t.Fatal(err)
		}
		client := &tls.Config{RootCAs: c.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{opair}}
		if _, serr, _ := handshake(t, server, client); serr == nil {
			t.Fatal("server accepted a certificate from another CA")
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		client := &tls.Config{RootCAs: c.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{pair},
			MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
		if cerr, serr, _ := handshake(t, server, client); cerr == nil && serr == nil {
			t.Fatal("TLS 1.1 accepted")
		}
	})
}
