//go:build race

package shadow_test

// raceEnabled: under -race a real model takes seconds per frame.
const raceEnabled = true
