package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"edgefleet/fleet/api"
	"edgefleet/internal/atomicfile"
	"edgefleet/models/manifest"
)

// The data directory:
//
//	<dir>/state.json            which model is current, previous (the last
//	                            known good before it) and on trial; queued jobs;
//	                            ids of jobs seen. Replaced by write, fsync,
//	                            rename, fsync of the directory.
//	<dir>/models/<sha256>.tflite installed models (current, previous, trial)
//	<dir>/staging/<sha256>.part  a download in progress; kept across restarts
//	                            so the next attempt resumes with a Range request
//	<dir>/staging/<sha256>.etag  the ETag the partial file came with (If-Range)

// stateVersion is the schema version of state.json.
const stateVersion = 1

// maxJobRecords bounds the remembered job ids; the oldest are forgotten first.
const maxJobRecords = 512

// Model is an installed model as state.json records it.
type Model struct {
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	// Manifest, Sig and KeyID are the signed manifest it was installed with;
	// empty for a model adopted from local configuration (Seed).
	Manifest []byte `json:"manifest,omitempty"`
	Sig      []byte `json:"signature,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
}

// trial is a model swapped in and under watch; current is still the last
// known good one until the health window commits the trial.
type trial struct {
	JobID string `json:"job_id"`
	Model Model  `json:"model"`
}

// JobRecord is the last state a job reached.
type JobRecord struct {
	JobID  string `json:"job_id"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// From and To are the sha256 of the model a committed update replaced
	// and installed (From is empty when there was none on record).
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

type state struct {
	Version  int           `json:"version"`
	Current  *Model        `json:"current,omitempty"`
	Previous *Model        `json:"previous,omitempty"`
	Trial    *trial        `json:"trial,omitempty"`
	Queue    []api.Command `json:"queue,omitempty"`
	Jobs     []JobRecord   `json:"jobs,omitempty"`
}

func (s *state) job(id string) (JobRecord, bool) {
	for _, j := range s.Jobs {
		if j.JobID == id {
			return j, true
		}
	}
	return JobRecord{}, false
}

// record sets the job's state, adding it if new, dropping the oldest past
// the bound. From and To, once set, stay.
func (s *state) record(j JobRecord) {
	for i := range s.Jobs {
		if s.Jobs[i].JobID == j.JobID {
			if j.To == "" {
				j.From, j.To = s.Jobs[i].From, s.Jobs[i].To
			}
			s.Jobs[i] = j
			return
		}
	}
	s.Jobs = append(s.Jobs, j)
	if n := len(s.Jobs) - maxJobRecords; n > 0 {
		s.Jobs = append([]JobRecord(nil), s.Jobs[n:]...)
	}
}

func (s *state) dequeue(jobID string) {
	for i, c := range s.Queue {
		if c.JobID == jobID {
			s.Queue = append(s.Queue[:i:i], s.Queue[i+1:]...)
			return
		}
	}
}

// loadState reads path; a missing file is an empty state.
func loadState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{Version: stateVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update: read state: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("update: read state %s: %w", path, err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("update: read state %s: schema version %d, this agent reads %d", path, s.Version, stateVersion)
	}
	for _, m := range []*Model{s.Current, s.Previous} {
		if m != nil && manifest.CheckSHA256(m.SHA256) != nil {
			return nil, fmt.Errorf("update: read state %s: bad model sha256 %q", path, m.SHA256)
		}
	}
	if s.Trial != nil && manifest.CheckSHA256(s.Trial.Model.SHA256) != nil {
		return nil, fmt.Errorf("update: read state %s: bad trial sha256 %q", path, s.Trial.Model.SHA256)
	}
	return &s, nil
}

// saveState replaces path atomically and durably.
func saveState(path string, s *state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("update: save state: %w", err)
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("update: save state: %w", err)
	}
	return nil
}
