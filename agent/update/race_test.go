//go:build race

package update

// raceEnabled: under -race a real model takes seconds per frame, so real
// shadow phases run longer to compare a few frames.
const raceEnabled = true
