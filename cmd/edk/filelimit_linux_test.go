package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/internal/testutil"
)

// lowerFileLimit sets the process's soft open-file limit to v. (Go raised
// it to the hard limit at start; a service manager's LimitNOFILE sets both.)
func lowerFileLimit(v string) error {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", childFileLimitEnv, v, err)
	}
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return fmt.Errorf("get the open-file limit: %w", err)
	}
	r.Cur = min(n, r.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return fmt.Errorf("set the open-file limit to %d: %w", n, err)
	}
	return nil
}

// openFiles counts the files process pid holds, or -1 when it cannot tell.
func openFiles(pid int) int {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(fds)
}

// TestHubSilentFloodUnderLowFileLimit is the descriptor exhaustion attack on
// `edk hub` with its default flags, run under a low open-file limit:
// strangers open more TCP connections to the MQTT port than the hub may
// hold files, and never send CONNECT. Without the connection cap the hub
// accepted them until EMFILE, and then could accept nothing else: the HTTP
// API stopped answering. The cap follows the open-file limit (here 768 less
// 512, so 256 connections), the flood comes from several addresses so that
// the per-address cap (256) does not stop it first, and the connect
// deadline is set past the test's length so that only the cap is at work.
func TestHubSilentFloodUnderLowFileLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the hub as a process and opens 800 connections to it")
	}
	const limit, addrs, perAddr = 768, 4, 200
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur < 2*addrs*perAddr {
		t.Fatalf("this test holds %d connections and needs an open-file limit of %d; it is %d (%v)", addrs*perAddr, 2*addrs*perAddr, r.Cur, err)
	}
	t.Setenv(childFileLimitEnv, strconv.Itoa(limit))
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	hub := startEDK(t, "hub", "--data", filepath.Join(t.TempDir(), "hub"), "--mqtt-addr", mqttAddr, "--mqtts-addr", "-",
		"--http-addr", httpAddr, "--mqtt-connect-timeout", "10m")
	hub.waitFor(t, "edk hub is running.")
	token := hub.token(t)
	id, cfg := provisionOn(t, "http://"+httpAddr, token)

	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for a := range addrs {
		// Linux routes all of 127/8 to lo.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+a))}, Timeout: waitLimit}
		for range perAddr {
			c, err := d.Dial("tcp", mqttAddr)
			if err != nil {
				t.Fatalf("connection %d: %v", len(conns), err)
			}
			conns = append(conns, c)
		}
	}
	// The hub has taken the flood in once it refused connections or holds
	// as many files as it may.
	testutil.EventuallyWithin(t, waitLimit, "the hub to take in the flood", func() bool {
		return strings.Contains(hub.output.String(), "the broker holds its most connections") || openFiles(hub.cmd.Process.Pid) >= limit
	})

	// Several requests, each on a connection of its own: a file the hub
	// frees for a moment may let one through.
	api := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 5 {
		req, err := http.NewRequest("GET", "http://"+httpAddr+"/v3/devices/"+id, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Enapter-Auth-Token", token)
		resp, err := api.Do(req)
		if err != nil {
			t.Fatalf("request %d: the HTTP API did not answer during the flood (the hub holds %d files): %v", i, openFiles(hub.cmd.Process.Pid), err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: the HTTP API answered %s during the flood", i, resp.Status)
		}
	}
	if n := openFiles(hub.cmd.Process.Pid); n >= limit {
		t.Errorf("the hub holds %d files, at its limit of %d", n, limit)
	}
	hub.waitFor(t, "mqtt connection refused: the broker holds its most connections")

	// Once the flood ends, a device gets in.
	for _, c := range conns {
		_ = c.Close()
	}
	conns = nil
	opts := testutil.ClientOptions(mqttAddr).SetUsername(cfg.Username).SetPassword(cfg.Password).SetConnectTimeout(5 * time.Second)
	testutil.EventuallyWithin(t, waitLimit, "the device to connect after the flood", func() bool {
		c := paho.NewClient(opts)
		if err := testutil.Wait(c.Connect()); err != nil {
			return false
		}
		c.Disconnect(0)
		return true
	})
}
