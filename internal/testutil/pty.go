package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// PtyPair starts socat joining two ptys (raw, no echo) and returns their
// paths and a func that kills socat, which hangs both ends up (a USB
// device unplugged); socat is killed at the end of the test in any case. Without socat the test
// skips, unless CI=true or EDK_REQUIRE_RTU=1, where it fails (.ci/run
// installs socat).
func PtyPair(t testing.TB) (string, string, func()) {
	t.Helper()
	socat, err := exec.LookPath("socat")
	if err != nil {
		msg := "this test runs over a pty pair and needs socat (apt-get install socat)"
		if os.Getenv("CI") == "true" || os.Getenv("EDK_REQUIRE_RTU") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command(socat, "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	cmd.SysProcAttr = ChildProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	Eventually(t, "socat's pty pair", func() bool {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		return ea == nil && eb == nil
	})
	return a, b, stop
}
