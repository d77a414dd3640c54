// Package internal holds the small helpers that the agent, the fleet and the
// firmware code share: atomic file writes, the bbolt schema-version check
// and test helpers. Nothing here knows about detections, devices or models.
package internal
