package testutil

import "syscall"

// procAttr makes the kernel kill a child broker if the test binary dies
// without running its cleanups (a panic, a -timeout, a kill -9). The signal
// is tied to the OS thread that started the child; the Go runtime only ends
// a thread when a goroutine exits while locked to it, which tests here don't.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
