package api

// Inventory describes the box an agent runs on. The agent sends it in its
// retained State at connect and again every few minutes (the disk and
// uptime figures move); fleetd shows the latest in the device JSON.
// Every field is optional: an agent leaves out what it cannot tell.
type Inventory struct {
	// Address is the IP address the device uses to reach the broker.
	Address  string `json:"address,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	// OS is the operating system's name (e.g. "Ubuntu 24.04.1 LTS", else
	// GOOS), Arch the CPU architecture (GOARCH, "arm" with GOARM), Kernel
	// the kernel release.
	OS           string `json:"os,omitempty"`
	Arch         string `json:"arch,omitempty"`
	Kernel       string `json:"kernel,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`
	Model        string `json:"model,omitempty"`
	ModelVersion string `json:"model_version,omitempty"`
	// DiskFreeBytes and DiskTotalBytes are of the file system holding the
	// agent's data (the spool).
	DiskFreeBytes  uint64 `json:"disk_free_bytes,omitempty"`
	DiskTotalBytes uint64 `json:"disk_total_bytes,omitempty"`
	// UptimeS is how long the system has been up, and BootTime when it
	// started (unix milliseconds).
	UptimeS  float64 `json:"uptime_s,omitempty"`
	BootTime int64   `json:"boot_time_ms,omitempty"`
	// Time is when the inventory was taken, unix milliseconds.
	Time int64 `json:"time_ms,omitempty"`
}
