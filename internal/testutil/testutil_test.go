package testutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/internal/testutil"
)

// roundTrip proves a broker at addr carries a message between two clients.
func roundTrip(t *testing.T, sub, pub paho.Client) {
	t.Helper()
	msgs := testutil.Subscribe(t, sub, "edk/test/#")
	if err := testutil.Wait(pub.Publish("edk/test/hello", 1, false, "hi")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if m := testutil.Receive(t, msgs); string(m.Payload()) != "hi" {
		t.Errorf("got %q", m.Payload())
	}
}

func TestStartBroker(t *testing.T) {
	b := testutil.StartBroker(t)
	roundTrip(t, testutil.Connect(t, b.Addr()), testutil.Connect(t, b.Addr()))
}

func TestRestartableBroker(t *testing.T) {
	r := testutil.StartRestartableBroker(t)
	addr := r.Addr()
	roundTrip(t, testutil.Connect(t, addr), testutil.Connect(t, addr))

	r.Stop()
	if r.Broker() != nil {
		t.Error("Broker() is not nil after Stop")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("stopped broker still accepts")
	}
	r.Start()
	if r.Addr() != addr || r.Broker().Addr() != addr {
		t.Errorf("restarted on %s, want %s", r.Broker().Addr(), addr)
	}
	roundTrip(t, testutil.Connect(t, addr), testutil.Connect(t, addr))
}

func TestMosquitto(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	roundTrip(t, testutil.Connect(t, m.Addr), testutil.Connect(t, m.Addr))
}

func TestMosquittoRestart(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	addr := m.Addr
	lost := make(chan error, 1)
	testutil.ConnectWith(t, testutil.ClientOptions(addr).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))

	m.Stop()
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("client not disconnected by Stop")
	}
	m.Start()
	if m.Addr != addr {
		t.Fatalf("restarted on %s, want %s", m.Addr, addr)
	}
	roundTrip(t, testutil.Connect(t, addr), testutil.Connect(t, addr))
}

func TestMosquittoPassword(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{Username: "dev", Password: "s3cret"})
	login := func(user, pass string) *paho.ClientOptions {
		return testutil.ClientOptions(m.Addr).SetUsername(user).SetPassword(pass)
	}
	roundTrip(t, testutil.ConnectWith(t, login("dev", "s3cret")), testutil.ConnectWith(t, login("dev", "s3cret")))

	for name, opts := range map[string]*paho.ClientOptions{
		"wrong password": login("dev", "wrong"),
		"anonymous":      testutil.ClientOptions(m.Addr),
	} {
		if err := testutil.Wait(paho.NewClient(opts).Connect()); err == nil {
			t.Errorf("%s: connected", name)
		}
	}
}

func TestMosquittoTLSClientCert(t *testing.T) {
	pki := testutil.NewPKI(t)
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{TLS: pki})
	url := "ssl://" + m.TLSAddr
	withCert := func() *paho.ClientOptions {
		return testutil.ClientOptions(url).SetTLSConfig(pki.ClientTLSConfig(t, "device-1"))
	}
	roundTrip(t, testutil.ConnectWith(t, withCert()), testutil.ConnectWith(t, withCert()))

	noCert := testutil.ClientOptions(url).SetTLSConfig(&tls.Config{RootCAs: pki.CertPool()})
	if err := testutil.Wait(paho.NewClient(noCert).Connect()); err == nil {
		t.Error("connected without a client certificate")
	}
	// The plain listener is still there beside the TLS one.
	testutil.Connect(t, m.Addr)
}

func TestMosquittoTLSPassword(t *testing.T) {
	pki := testutil.NewPKI(t)
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{Username: "dev", Password: "pw", TLS: pki, NoClientCert: true})
	opts := testutil.ClientOptions("ssl://" + m.TLSAddr).
		SetTLSConfig(&tls.Config{RootCAs: pki.CertPool()}).
		SetUsername("dev").SetPassword("pw")
	testutil.ConnectWith(t, opts)
}

// The wrong-host certificate fails a strict check and passes when the name
// it was issued for is expected.
func TestMosquittoWrongHostCert(t *testing.T) {
	pki := testutil.NewPKI(t)
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{TLS: pki, WrongHostCert: true})

	strict := pki.ClientTLSConfig(t, "device-1")
	err := testutil.Wait(paho.NewClient(testutil.ClientOptions("ssl://" + m.TLSAddr).SetTLSConfig(strict)).Connect())
	var hostErr x509.HostnameError
	if !errors.As(err, &hostErr) {
		t.Errorf("strict connect: err = %v, want x509.HostnameError", err)
	}

	named := pki.ClientTLSConfig(t, "device-1")
	named.ServerName = testutil.WrongHostName
	testutil.ConnectWith(t, testutil.ClientOptions("ssl://"+m.TLSAddr).SetTLSConfig(named))
}

func TestPKIFiles(t *testing.T) {
	pki := testutil.NewPKI(t)
	for _, f := range []string{pki.CAFile, pki.ServerCertFile, pki.ServerKeyFile, pki.WrongHostCertFile, pki.WrongHostKeyFile} {
		if f == "" {
			t.Fatal("a PKI file path is empty")
		}
	}
	if _, err := tls.LoadX509KeyPair(pki.ServerCertFile, pki.ServerKeyFile); err != nil {
		t.Errorf("server key pair from files: %v", err)
	}
	cert, key := pki.IssueClient(t, "device-2")
	kp, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(kp.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pki.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not chain to the CA: %v", err)
	}
	if leaf.Subject.CommonName != "device-2" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
}

func TestWaitForTCP(t *testing.T) {
	b := testutil.StartBroker(t)
	testutil.WaitForTCP(t, b.Addr(), time.Second)
}

func TestEventually(t *testing.T) {
	n := 0
	testutil.Eventually(t, "the third call", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

func TestEventuallyFailsAtTheLimit(t *testing.T) {
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testutil.EventuallyWithin(ft, 30*time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if !strings.Contains(ft.msg, "waiting for never: not within 30ms") {
		t.Fatalf("failure %q, want it to name what and the limit", ft.msg)
	}
}

// fatalRecorder records Fatalf instead of failing the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
