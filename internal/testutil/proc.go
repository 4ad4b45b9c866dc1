package testutil

import "syscall"

// ChildProcAttr is the SysProcAttr for a child process that a test starts
// itself: on Linux the kernel kills the child if the test binary dies
// without running its cleanups (see procAttr). Start the child from the
// test's goroutine, as for the brokers here.
func ChildProcAttr() *syscall.SysProcAttr { return procAttr() }
