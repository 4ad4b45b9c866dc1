//go:build !linux

package main

import "errors"

func lowerFileLimit(string) error {
	return errors.New("lowering the open-file limit is only done on Linux")
}
