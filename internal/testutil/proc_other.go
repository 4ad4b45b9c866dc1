//go:build !linux

package testutil

import "syscall"

// procAttr has no parent-death signal to ask for outside Linux; cleanups
// still stop the child.
func procAttr() *syscall.SysProcAttr { return nil }
