//go:build !unix

package broker

// fdLimit returns 0: the open-file limit is not known on this system.
func fdLimit() int { return 0 }
