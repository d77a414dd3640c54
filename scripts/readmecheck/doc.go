// Package readmecheck keeps README.md honest: its tests extract every
// command line of the README (fenced sh blocks, indented blocks and inline
// code spans that start with one of the project's commands or tools) and
// either run it exactly as written, against freshly built binaries and a
// running fleetd, or find it in a table of excused commands with the reason
// (camera, GPU, root, long-running, internet). A command in neither table,
// or a table entry the README no longer has, fails the test.
package readmecheck
