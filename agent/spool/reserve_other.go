//go:build !linux

package spool

// reserve is a no-op where fallocate is not available.
func reserve(string, int64) error { return nil }
