package rollout

// Addressed reports whether a rollout has a job for device that sends
// the artifact with sha256: the artifact downloads a device may make.
func (e *Engine) Addressed(device, sha256 string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.rollouts {
		if r.Spec.Artifact.SHA256 != sha256 {
			continue
		}
		for _, j := range r.Jobs {
			if j.DeviceID == device {
				return true
			}
		}
	}
	return false
}
