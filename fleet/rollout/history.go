package rollout

import (
	"strconv"
	"time"
)

// Transition is one entry of a rollout's history.
//
// From and To are phases: "" (before creation), "pending", "canary",
// "wave N", "paused", "completed", "aborted", "rolling_back" (rollback jobs
// under way) and "rolled_back" (every rollback job has ended). The phase is
// finer than State: an aborted rollout whose devices are being sent back
// keeps State aborted, and its history goes on to rolling_back and
// rolled_back.
type Transition struct {
	At     time.Time `json:"at"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason,omitempty"`
	// By is ActorEngine or the operator who asked.
	By string `json:"by"`
}

// Actors recorded in Transition.By.
const (
	// ActorEngine marks what the engine did by itself.
	ActorEngine = "engine"
	// ActorOperator is recorded when an operator action names nobody.
	ActorOperator = "operator"
)

// Phases beyond those named after a State.
const (
	phaseRollingBack = "rolling_back"
	phaseRolledBack  = "rolled_back"
)

func phaseOf(s State, wave int) string {
	if s == StateWave {
		return "wave " + strconv.Itoa(wave)
	}
	return string(s)
}

// Phase is the rollout's current phase (see Transition).
func (r *Rollout) Phase() string {
	if n := len(r.Transitions); n > 0 {
		return r.Transitions[n-1].To
	}
	return phaseOf(r.State, r.Wave)
}

// record appends a transition. Callers take from (r.Phase()) before they
// change r's state: a rollout stored before transitions existed has its
// phase in its state alone.
func (r *Rollout) record(now time.Time, from, to, reason, by string) {
	if by == "" {
		by = ActorOperator
	}
	r.Transitions = append(r.Transitions, Transition{At: now, From: from, To: to, Reason: reason, By: by})
}

// rollbacksSettled reports whether every rollback the rollout will send has
// been sent and has ended: no rollback job is waiting or in flight, and no
// update job that could still earn one is in flight.
func (r *Rollout) rollbacksSettled() bool {
	for i := range r.Jobs {
		j := &r.Jobs[i]
		if j.Rollback != "" && !jobFinal(j.Rollback) {
			return false
		}
		if j.State != JobPending && !jobFinal(j.State) {
			return false
		}
	}
	return true
}
