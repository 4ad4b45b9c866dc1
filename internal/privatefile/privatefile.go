// Package privatefile creates the files edk keeps data in with mode 0600
// before another library (SQLite) would create them with the umask's mode.
package privatefile

import (
	"errors"
	"io/fs"
	"os"
)

// Create creates path, empty and with mode 0600, unless it exists; an
// existing file keeps its mode. SQLite gives its WAL and shm files the
// database file's mode, so creating the database this way covers them too.
func Create(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}
