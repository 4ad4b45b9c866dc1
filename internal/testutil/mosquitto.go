package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// mosquittoStartTimeout bounds the wait for a new mosquitto to accept.
	mosquittoStartTimeout = 10 * time.Second
	// mosquittoStopTimeout is how long SIGTERM gets before SIGKILL.
	mosquittoStopTimeout = 5 * time.Second
)

// MosquittoOptions configures StartMosquitto. The zero value is one plain
// listener that lets anyone in.
type MosquittoOptions struct {
	// Username and Password, when Username is set, are the only credentials
	// accepted (mosquitto_passwd file, allow_anonymous false), on every listener.
	Username, Password string
	// TLS adds an MQTTS listener serving TLS's server certificate and requiring
	// a client certificate issued by its CA.
	TLS *PKI
	// WrongHostCert makes the MQTTS listener serve TLS's wrong-host certificate.
	WrongHostCert bool
	// NoClientCert makes the MQTTS listener ask for no client certificate
	// (server-authenticated TLS, e.g. with a password).
	NoClientCert bool
	// Settings are extra lines of mosquitto.conf's general section, e.g.
	// "max_queued_messages 0" for a benchmark whose subscriber must not
	// miss a message while it falls behind.
	Settings []string
}

// Mosquitto is a mosquitto process listening on 127.0.0.1. It is killed when
// the test ends; its log is printed if the test fails.
type Mosquitto struct {
	Addr    string // plain MQTT listener, host:port
	TLSAddr string // MQTTS listener, host:port; "" without MosquittoOptions.TLS

	t    testing.TB
	bin  string
	conf string
	log  *logBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil while stopped
	exited chan struct{} // closed once cmd has been waited for
}

// StartMosquitto starts mosquitto on free ports and waits until it accepts
// connections. Without a mosquitto binary the test is skipped, unless CI=true
// or EDK_REQUIRE_MOSQUITTO=1, where it fails.
func StartMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	bin := mosquittoTool(t, "mosquitto")
	m := &Mosquitto{t: t, bin: bin, log: new(logBuffer)}
	logOnFailure(t, "mosquitto", m.log)
	t.Cleanup(m.Stop)

	dir := t.TempDir()
	var passwd string
	if opts.Username != "" {
		passwd = writePasswd(t, dir, opts.Username, opts.Password)
	}
	m.conf = filepath.Join(dir, "mosquitto.conf")
	// FreePort can race with another process taking the port; pick new ports
	// and try again when that is what went wrong.
	for attempt := 1; ; attempt++ {
		m.Addr = hostPort(FreePort(t))
		if opts.TLS != nil {
			m.TLSAddr = hostPort(FreePort(t))
		}
		if err := os.WriteFile(m.conf, []byte(mosquittoConf(m.Addr, m.TLSAddr, passwd, opts)), 0o600); err != nil {
			t.Fatalf("write mosquitto config: %v", err)
		}
		err := m.start()
		if err == nil {
			return m
		}
		if attempt == 3 || !strings.Contains(m.log.String(), "Address already in use") {
			t.Fatalf("start mosquitto: %v", err)
		}
	}
}

// Start starts mosquitto again on the same ports, after Stop.
func (m *Mosquitto) Start() {
	m.t.Helper()
	if err := m.start(); err != nil {
		m.t.Fatalf("restart mosquitto: %v", err)
	}
}

func (m *Mosquitto) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return nil
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is in the log; a killed broker is the normal end
		close(exited)
	}()
	m.cmd, m.exited = cmd, exited

	for _, addr := range []string{m.Addr, m.TLSAddr} {
		if addr == "" {
			continue
		}
		if err := waitForTCP(addr, mosquittoStartTimeout, exited); err != nil {
			m.stopLocked()
			if errors.Is(err, errExited) {
				return fmt.Errorf("mosquitto exited at start (%s); see its log", cmd.ProcessState)
			}
			return err
		}
	}
	return nil
}

// Stop terminates mosquitto and waits for it to exit; its ports are free
// when Stop returns. Stopping a stopped mosquitto does nothing.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopLocked()
}

func (m *Mosquitto) stopLocked() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(mosquittoStopTimeout)
	defer timer.Stop()
	select {
	case <-m.exited:
	case <-timer.C:
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	m.cmd, m.exited = nil, nil
}

func mosquittoConf(addr, tlsAddr, passwd string, opts MosquittoOptions) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# written by testutil.StartMosquitto")
	line("per_listener_settings true")
	line("persistence false")
	// Without it small packets wait ~40 ms for a delayed ACK, which hides
	// every latency a test or benchmark wants to see.
	line("set_tcp_nodelay true")
	line("log_dest stderr")
	line("log_timestamp_format %%H:%%M:%%S")
	line("log_type error\nlog_type warning\nlog_type notice\nlog_type information")
	for _, setting := range opts.Settings {
		line("%s", setting)
	}
	if u, err := user.Current(); err == nil {
		// Run as root, mosquitto would drop to user "mosquitto", which cannot
		// read the test's temporary files, and lose the parent-death signal.
		line("user %s", u.Username)
	}
	auth := func() {
		if passwd == "" {
			line("allow_anonymous true")
			return
		}
		line("allow_anonymous false")
		line("password_file %s", passwd)
	}
	line("%s", listenerLine(addr))
	auth()
	if tlsAddr == "" {
		return b.String()
	}
	line("%s", listenerLine(tlsAddr))
	auth()
	cert, key := opts.TLS.ServerCertFile, opts.TLS.ServerKeyFile
	if opts.WrongHostCert {
		cert, key = opts.TLS.WrongHostCertFile, opts.TLS.WrongHostKeyFile
	}
	line("cafile %s", opts.TLS.CAFile)
	line("certfile %s", cert)
	line("keyfile %s", key)
	line("require_certificate %t", !opts.NoClientCert)
	return b.String()
}

// listenerLine is mosquitto's "listener <port> <host>" for a host:port.
func listenerLine(addr string) string {
	host, port, _ := net.SplitHostPort(addr) // built by hostPort
	return "listener " + port + " " + host
}

func writePasswd(t testing.TB, dir, username, password string) string {
	t.Helper()
	path := filepath.Join(dir, "passwd")
	out, err := exec.Command(mosquittoTool(t, "mosquitto_passwd"), "-b", "-c", path, username, password).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	return path
}

// mosquittoTool finds a mosquitto program, also in the sbin folders that a
// non-root PATH often lacks, and skips or fails the test without it.
func mosquittoTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" || os.Getenv("EDK_REQUIRE_MOSQUITTO") == "1" {
		t.Fatalf("%s not found; mosquitto required in CI: apt-get install mosquitto", name)
	}
	t.Skipf("%s not found; install it to run this test: apt-get install mosquitto", name)
	return ""
}
