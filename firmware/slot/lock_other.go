//go:build !unix

package slot

import "sync"

var mu sync.Mutex

// locked runs f under a process-wide mutex; systems without flock(2) get no
// protection between processes.
func (s *Slots) locked(f func() error) error {
	mu.Lock()
	defer mu.Unlock()
	return f()
}
