package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/testutil"
)

func TestExecOverTLS(t *testing.T) {
	pki := testutil.NewPKI(t)
	dir := t.TempDir()
	cert, key := pki.IssueClient(t, "operator")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		wrongHost bool
		extra     []string
		wantCode  int
		wantErr   string
	}{
		{"CA and client certificate", false, nil, 0, ""},
		{"host name mismatch is refused", true, nil, 1, "certificate"},
		{"host name mismatch with --tls-skip-host-check", true, []string{"--tls-skip-host-check"}, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := testutil.StartMosquitto(t, testutil.MosquittoOptions{TLS: pki, WrongHostCert: tt.wrongHost})
			host, port, _ := net.SplitHostPort(m.Addr)
			blob, err := commconfig.Config{Version: commconfig.Version3, HardwareID: "hw-tls", ChannelID: "primary",
				Host: host, Port: atoi(t, port), Protocol: commconfig.ProtocolMQTT}.Encode()
			if err != nil {
				t.Fatal(err)
			}
			dev := startCLI(t, map[string]string{commconfig.EnvConfig: blob}, "run")
			if !dev.stderr.WaitFor("state=connected", waitLimit) {
				t.Fatalf("device did not connect: %s", dev.stderr)
			}
			args := append([]string{"exec", "--broker", "ssl://" + m.TLSAddr, "--hardware-id", "hw-tls",
				"--tls-ca", pki.CAFile, "--tls-cert", certFile, "--tls-key", keyFile}, tt.extra...)
			c := startCLI(t, nil, append(args, "set_power", "power=10")...)
			if code := c.wait(t); code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tt.wantCode, c.stderr)
			}
			if !strings.Contains(c.stderr.String(), tt.wantErr) {
				t.Fatalf("stderr lacks %q: %s", tt.wantErr, c.stderr)
			}
		})
	}
	t.Run("key without certificate", func(t *testing.T) {
		c := startCLI(t, nil, "exec", "--hardware-id", "x", "--tls-key", keyFile, "set_power")
		if code := c.wait(t); code != 2 || !strings.Contains(c.stderr.String(), "together") {
			t.Fatalf("code %d: %s", code, c.stderr)
		}
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
