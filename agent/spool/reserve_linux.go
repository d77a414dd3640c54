package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// reserve allocates disk blocks for the whole file. bbolt grows the file
// with truncate, which leaves a sparse tail; with its blocks allocated, the
// pages past bbolt's high-water mark stay writable when the disk fills, so
// the transaction that drops the oldest events can still commit.
func reserve(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, size)
}
