package server

import (
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/store"
	"edgefleet/models/manifest"
)

// The functions below map the fleet's own types onto the REST contract
// (fleet/api/rest), field by field; contract_test.go checks that the JSON
// stays what it was.

func restDevice(d registry.Device) rest.Device {
	out := rest.Device{ID: d.ID, Labels: d.Labels, Online: d.Online, AgentVersion: d.AgentVersion, Model: d.Model,
		ModelVersion: d.ModelVersion, Engine: d.Engine, Delegate: d.Delegate, Cameras: d.Cameras, SnapshotURL: d.SnapshotURL,
		FirstSeen: d.FirstSeen, LastSeen: d.LastSeen, StateTime: d.StateTime, Telemetry: d.Telemetry, TelemetryAt: d.TelemetryAt,
		Detections: d.Detections, DetectionsPerMin: d.DetectionsPerMin, LastJob: d.LastJob, Jobs: d.Jobs, Health: d.Health}
	out.Inventory = d.Inventory
	return out
}

func restPoints(ps []registry.Point) []rest.Point {
	out := make([]rest.Point, len(ps))
	for i, p := range ps {
		out[i] = rest.Point{Time: p.Time, FPS: p.FPS, InferP50Ms: p.InferP50Ms, InferP99Ms: p.InferP99Ms, Dropped: p.Dropped,
			DropRate: p.DropRate, SpoolDepth: p.SpoolDepth, CamerasUp: p.CamerasUp}
	}
	return out
}

func restGroups(gs []registry.Summary) []rest.Group {
	out := make([]rest.Group, len(gs))
	for i, g := range gs {
		out[i] = rest.Group{Site: g.Site, Line: g.Line, Online: g.Online, Offline: g.Offline, Unhealthy: g.Unhealthy,
			DetectionsPerMin: g.DetectionsPerMin}
	}
	return out
}

func restPage(p store.Page) rest.Page {
	out := rest.Page{Records: make([]rest.Record, len(p.Records)), Next: p.Next}
	for i, r := range p.Records {
		out.Records[i] = rest.Record{Device: r.Device, Event: r.Event}
	}
	return out
}

func restTensors(ts []manifest.Tensor) []rest.Tensor {
	if ts == nil {
		return nil
	}
	out := make([]rest.Tensor, len(ts))
	for i, t := range ts {
		out[i] = rest.Tensor{Name: t.Name, Type: t.Type, Shape: t.Shape, Scale: t.Scale, ZeroPoint: t.ZeroPoint}
	}
	return out
}

func restSummary(s rollout.Summary) rest.RolloutSummary {
	out := rest.RolloutSummary{ID: s.ID, Kind: s.Kind, Name: s.Name, Version: s.Version, SHA256: s.SHA256, Selector: s.Selector,
		State: string(s.State), Wave: s.Wave, Waves: s.Waves, Reason: s.Reason, Targets: s.Targets, Succeeded: s.Succeeded,
		Failed: s.Failed, Cancelled: s.Cancelled, MaxFailures: s.MaxFailures, MaxFailureRate: s.MaxFailureRate, MinExecutions: s.MinExecutions,
		RollbackOnAbort: s.RollbackOnAbort, RolledBack: s.RolledBack, Shadow: s.Shadow, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	if s.Progress != nil {
		out.Progress = make([]rest.WaveProgress, len(s.Progress))
		for i, p := range s.Progress {
			out.Progress[i] = rest.WaveProgress{Wave: p.Wave, Devices: p.Devices, Pending: p.Pending, InFlight: p.InFlight,
				Succeeded: p.Succeeded, Failed: p.Failed, Cancelled: p.Cancelled, ShadowPassed: p.ShadowPassed, ShadowFailed: p.ShadowFailed,
				ShadowAccepted: p.ShadowAccepted, ShadowAgreement: p.ShadowAgreement}
		}
	}
	return out
}

func restSummaries(ss []rollout.Summary) []rest.RolloutSummary {
	out := make([]rest.RolloutSummary, len(ss))
	for i, s := range ss {
		out[i] = restSummary(s)
	}
	return out
}

func restJob(j rollout.Job) rest.Job {
	return rest.Job{DeviceID: j.DeviceID, JobID: j.JobID, Wave: j.Wave, State: j.State, Progress: j.Progress, Reason: j.Reason,
		Previous: j.Previous, QueuedAt: j.QueuedAt, SentAt: j.SentAt, UpdatedAt: j.UpdatedAt, Rollback: j.Rollback,
		RollbackReason: j.RollbackReason, RollbackAt: j.RollbackAt, Shadow: restJobShadow(j.Shadow)}
}

func restJobShadow(sh *rollout.ShadowResult) *rest.JobShadow {
	if sh == nil {
		return nil
	}
	return &rest.JobShadow{Final: sh.Final, Passed: sh.Passed, Agreement: sh.Agreement, Frames: sh.Frames, UpdatedAt: sh.UpdatedAt,
		AcceptedBy: sh.AcceptedBy, AcceptedAt: sh.AcceptedAt, FailedJob: sh.FailedJob}
}

// restRollout is the detailed view of one rollout, with its history.
func restRollout(ro *rollout.Rollout) rest.Rollout {
	v := rest.Rollout{RolloutSummary: restSummary(ro.Summarize()), Canary: ro.Spec.Canary, WavePercents: ro.Spec.Waves,
		HealthWindow: ro.Spec.HealthWindow.String(), JobTimeout: ro.Spec.JobTimeout.String(), Jobs: make([]rest.Job, len(ro.Jobs)),
		States: map[string]int{}, RollbackStates: map[string]int{}}
	if len(ro.Transitions) > 0 {
		v.Transitions = make([]rest.Transition, len(ro.Transitions))
		for i, t := range ro.Transitions {
			v.Transitions[i] = rest.Transition{At: t.At, From: t.From, To: t.To, Reason: t.Reason, By: t.By}
		}
	}
	for i, j := range ro.Jobs {
		v.Jobs[i] = restJob(j)
		v.States[j.State]++
		if j.Rollback != "" {
			v.RollbackStates[j.Rollback]++
		}
	}
	return v
}
