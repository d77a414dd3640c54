//go:build race

package readmecheck

// raceBuild: under -race the binaries are built with -race too, which
// reuses the packages `make test` has just compiled instead of building
// every dependency a second time.
const raceBuild = true
