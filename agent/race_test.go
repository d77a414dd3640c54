//go:build race

package agent

// raceEnabled: under -race the pure-Go engine runs several times slower, so
// the model-driven tests do less.
const raceEnabled = true
