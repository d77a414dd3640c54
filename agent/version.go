// Package agent is the edge agent: it wires cameras, the detector, the spool
// and the fleet link together and runs them (Run).
package agent

// Version is the agent's version, stamped at build time with
// -ldflags "-X edgefleet/agent.Version=...".
var Version = "dev"

// ConfigSchema is the version of the config file format this build reads.
// A firmware bundle declares the oldest schema it needs (min_config_schema),
// and a device whose config is older refuses it.
const ConfigSchema = 1
