//go:build !unix

package dirlock

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("would block")

// tryLock is a no-op where flock does not exist; bbolt's own file lock
// still guards the databases there.
func tryLock(*os.File) error { return nil }
