// Package agent is the edge agent: it wires cameras, the detector, the spool
// and the fleet link together and runs them (Run).
package agent

// Version is the agent's version, stamped at build time with
// -ldflags "-X edgefleet/agent.Version=...".
var Version = "dev"
