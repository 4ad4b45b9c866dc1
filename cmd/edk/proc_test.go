package main

import (
	"context"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/edk-go/edk/internal/testutil"
)

// childEnv makes the test binary, started again by startEDK, run `edk`
// with the arguments after "--" (in TestEDKChild) instead of the tests: a
// real process that a test can kill with SIGKILL, without a go build.
const childEnv = "EDK_TEST_CHILD"

// childFileLimitEnv, when set, is the open-file limit (RLIMIT_NOFILE) the
// child runs `edk` under, as a service with a low LimitNOFILE would.
const childFileLimitEnv = "EDK_TEST_CHILD_NOFILE"

// TestEDKChild is the child's side; it does nothing in a normal run.
func TestEDKChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		return
	}
	if v := os.Getenv(childFileLimitEnv); v != "" {
		if err := lowerFileLimit(v); err != nil {
			t.Fatal(err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, readFile: os.ReadFile}
	if code := run(ctx, e, flag.Args()); code != 0 {
		os.Exit(code)
	}
}

// edkProcess is `edk` running as a child process.
type edkProcess struct {
	cmd    *exec.Cmd
	output *testutil.SyncBuffer // stdout and stderr
	exited chan struct{}
	client *http.Client
}

// startEDK starts `edk args...` as a child process, killed when the test
// ends (and with the test binary, should that die first).
func startEDK(t *testing.T, args ...string) *edkProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestEDKChild$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	p := &edkProcess{cmd: cmd, output: &testutil.SyncBuffer{}, exited: make(chan struct{}), client: &http.Client{Timeout: 5 * time.Second}}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	cmd.SysProcAttr = testutil.ChildProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start edk %v: %v", args, err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill(t)
		p.client.CloseIdleConnections()
	})
	return p
}

// kill ends the process with SIGKILL: no deferred code, no clean stop.
func (p *edkProcess) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(waitLimit):
		t.Errorf("edk did not exit after SIGKILL")
	}
}

func (p *edkProcess) waitFor(t *testing.T, s string) {
	t.Helper()
	if !p.output.WaitFor(s, waitLimit) {
		t.Fatalf("%q never appeared in edk's output:\n%s", s, p.output)
	}
}
