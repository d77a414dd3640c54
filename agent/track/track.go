// Package track follows objects across the frames of one camera: ByteTrack's
// association of detections to Kalman-predicted tracks, in pure Go and
// without allocating per frame once the pools have grown to the scene.
//
// Each Update runs ByteTrack's steps (Zhang et al., "ByteTrack: Multi-Object
// Tracking by Associating Every Detection Box", 2022):
//
//  1. detections split into high (score ≥ High) and low (Low ≤ score < High);
//  2. every tracked and lost track is predicted one frame ahead, or as many
//     frames as the time since the last Update spans when frames were
//     dropped (see frameSteps);
//  3. high detections are matched to confirmed and lost tracks by IoU ≥ MatchIoU;
//  4. low detections are matched to the confirmed tracks still unmatched by
//     IoU ≥ LowMatchIoU; confirmed tracks unmatched after that become lost;
//  5. tentative tracks (seen fewer than MinHits times) take the high
//     detections left over by IoU ≥ TentativeIoU, then the low ones (a weak
//     second sighting of an object a strong one started confirms it), and
//     are dropped if unmatched;
//  6. high detections still left with score ≥ NewTrack start tentative tracks;
//  7. lost tracks not matched for more than Buffer frames are removed.
//
// Two departures from ByteTrack beside 5's low detections: a detection is
// matched by its IoU with the track's predicted box or with the box the
// track's last two sightings extrapolate to, whichever is larger (obsIoU),
// and a frame that comes after dropped ones is predicted over the time that
// passed (frameSteps). Both matter for fast objects, such as parts on a
// belt moving a third of their width a frame.
//
// Matching is greedy by IoU, highest first (ties broken by track then
// detection order), where ByteTrack solves a linear assignment with lap: on
// the sparse IoU matrices of a camera scene the two agree except where two
// pairings have nearly equal IoU, and greedy needs no allocation and no
// O(n³) step. With ClassAware, a detection is matched only to a track of the
// same class (the track's class is the score-weighted vote of its detections).
//
// A Tracker is not safe for concurrent use; a camera owns one.
package track

import (
	"math"
	"slices"

	"edgefleet/models"
)

// Config tunes a Tracker. The zero value of each field means the default
// named in its comment (ByteTrack's defaults where it has one).
type Config struct {
	High         float32 // score of a high detection; 0.5
	Low          float32 // lowest score considered at all; 0.1
	NewTrack     float32 // lowest score that starts a track; High + 0.1 (0.6), at most 0.99
	MatchIoU     float32 // first association; 0.2 (ByteTrack's match_thresh 0.8 on 1-IoU)
	LowMatchIoU  float32 // second association (low detections); 0.5
	TentativeIoU float32 // tentative tracks; 0.3
	Buffer       int     // frame periods (dropped frames count) a lost track is kept for re-identification; 30
	MinHits      int     // matches before a track is confirmed and gets an id; 2
	// AnyClass lets a detection match a track of another class; by default
	// association is class-aware.
	AnyClass bool
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	def := func(v *float32, d float32) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.High, 0.5)
	def(&c.Low, 0.1)
	def(&c.NewTrack, min(c.High+0.1, 0.99))
	def(&c.MatchIoU, 0.2)
	def(&c.LowMatchIoU, 0.5)
	def(&c.TentativeIoU, 0.3)
	if c.Buffer == 0 {
		c.Buffer = 30
	}
	if c.MinHits == 0 {
		c.MinHits = 2
	}
	return c
}

// Detection is one box given to Update.
type Detection struct {
	Box   [4]float32 // x1, y1, x2, y2, any unit (pixels)
	Score float32
	Class int
}

// State is where a track is in its life.
type State uint8

// Track states.
const (
	Tentative State = iota // seen fewer than MinHits times; no id yet
	Tracked                // confirmed and matched in the last frame
	Lost                   // confirmed, not matched for up to Buffer frames
	Removed                // ended in the last Update (see Tracker.Ended)
)

const maxVotes = 4

type vote struct {
	class  int
	weight float32
}

// Track is one followed object. The Tracker owns it and reuses it after it
// has been reported in Ended; copy what must outlive the next Update.
type Track struct {
	ID    uint64 // 1, 2, ... in order of confirmation; 0 while tentative
	Slot  int    // index stable for the track's life, < Tracker.Slots(): for per-track state kept by callers
	State State
	Box   [4]float32 // filtered box (predicted while lost)
	Class int        // class by score-weighted vote
	// Det is the index in this frame's detections of the one matched to the
	// track, -1 when it was not matched.
	Det       int
	Score     float32 // score of the matched detection; 0 when unmatched
	BestScore float32
	Hits      int   // frames matched
	FirstUs   int64 // time of the first and last matched frames (Update's now)
	LastUs    int64

	kf        kalman
	votes     [maxVotes]vote
	lastFrame int64

	// The last two matched boxes and their frames, and the box they
	// extrapolate to in this frame (see obsIoU).
	obs      [2][4]float32 // previous, last
	obsFrame [2]int64
	nObs     int
	obsBox   [4]float32
	obsOK    bool // obsBox is set for this frame
}

// obsIoU is the IoU of b with t's predicted box, or with the box its last
// two sightings extrapolate to in this frame, whichever is larger. The
// filter starts at rest and takes many frames to reach the speed of a fast
// object (a part on a belt moving a third of its width a frame): until
// then its prediction lags, a weak or missing detection loses the track,
// and a new track starting past a counting line misses the crossing. The
// sightings' own motion keeps such a track; where it is wrong (a box that
// jitters on a still object) the filter's prediction is the better match.
func (t *Track) obsIoU(b [4]float32) float32 {
	v := iou(t.Box, b)
	if t.obsOK {
		v = max(v, iou(t.obsBox, b))
	}
	return v
}

// observe records a matched box as t's last sighting, in frame.
func (t *Track) observe(b [4]float32, frame int64) {
	t.obs[0], t.obsFrame[0] = t.obs[1], t.obsFrame[1]
	t.obs[1], t.obsFrame[1] = b, frame
	t.nObs++
}

// extrapolate sets obsBox: the last sighting moved on by the centre's
// motion between the last two sightings, per frame, over the frames since
// the last one. Past maxFrameSteps frames without a sighting the track is
// matched by the filter's prediction alone (obsOK false): a box held still
// there would wait for the next object to pass.
func (t *Track) extrapolate(frame int64) {
	since := frame - t.obsFrame[1]
	t.obsOK = t.nObs >= 2 && t.obsFrame[1] > t.obsFrame[0] && since <= maxFrameSteps
	if !t.obsOK {
		return
	}
	k := float32(since) / float32(t.obsFrame[1]-t.obsFrame[0])
	p, l := t.obs[0], t.obs[1]
	dx := ((l[0] + l[2]) - (p[0] + p[2])) / 2 * k
	dy := ((l[1] + l[3]) - (p[1] + p[3])) / 2 * k
	t.obsBox = [4]float32{l[0] + dx, l[1] + dy, l[2] + dx, l[3] + dy}
}

func (t *Track) vote(class int, w float32) {
	low := 0
	for i := range t.votes {
		v := &t.votes[i]
		if v.weight > 0 && v.class == class {
			v.weight += w
			t.elect()
			return
		}
		if v.weight < t.votes[low].weight {
			low = i
		}
	}
	t.votes[low] = vote{class: class, weight: w}
	t.elect()
}

func (t *Track) elect() {
	best := 0
	for i := range t.votes {
		if t.votes[i].weight > t.votes[best].weight {
			best = i
		}
	}
	t.Class = t.votes[best].class
}

type pair struct {
	iou      float32
	trk, det int
}

// Tracker follows the objects of one camera.
type Tracker struct {
	cfg    Config
	frame  int64 // frame periods since the start, dropped ones included
	nextID uint64

	lastNow  int64   // Update's now of the last frame
	interval float64 // the usual time between frames, in now's unit (0: not known yet)

	slots   int
	free    []*Track
	tracked []*Track // Tentative and Tracked
	lost    []*Track
	ended   []*Track

	// per-frame scratch, reused
	dets     []Detection
	used     []bool
	cand     []*Track
	pairs    []pair
	keep     []*Track
	nextLost []*Track
}

// New returns a Tracker; zero fields of cfg take their defaults.
func New(cfg Config) *Tracker { return &Tracker{cfg: cfg.WithDefaults(), nextID: 1} }

// Config returns the tracker's configuration with defaults applied.
func (tr *Tracker) Config() Config { return tr.cfg }

// Slots is one more than the largest Track.Slot handed out so far.
func (tr *Tracker) Slots() int { return tr.slots }

// Tracks returns the confirmed tracks, matched this frame (State Tracked)
// or lost (State Lost), valid until the next Update.
func (tr *Tracker) Tracks() []*Track { return tr.keep }

// Ended returns the confirmed tracks removed by the last Update: their last
// report before the Tracker reuses them.
func (tr *Tracker) Ended() []*Track { return tr.ended }

// EndAll ends every track, as when the camera's stream ends: the confirmed
// ones are reported by Ended (and Tracks is empty) until the next Update.
func (tr *Tracker) EndAll() {
	tr.free = append(tr.free, tr.ended...)
	tr.ended = tr.ended[:0]
	for _, t := range tr.tracked {
		if t.State == Tentative {
			tr.free = append(tr.free, t)
			continue
		}
		t.State = Removed
		tr.ended = append(tr.ended, t)
	}
	for _, t := range tr.lost {
		t.State = Removed
		tr.ended = append(tr.ended, t)
	}
	tr.tracked, tr.lost, tr.keep = tr.tracked[:0], tr.lost[:0], tr.keep[:0]
}

// Update takes one frame's detections, taken at now (any clock, e.g. unix
// microseconds), and returns the confirmed tracks as Tracks does.
// Detections with a box that is empty or not finite are ignored.
func (tr *Tracker) Update(now int64, dets []Detection) []*Track {
	steps := tr.frameSteps(now)
	tr.frame += int64(steps)
	tr.free = append(tr.free, tr.ended...)
	tr.ended = tr.ended[:0]
	tr.dets = append(tr.dets[:0], dets...)
	tr.used = tr.used[:0]
	for _, d := range tr.dets {
		tr.used = append(tr.used, !valid(d) || d.Score < tr.cfg.Low)
	}
	for _, t := range tr.tracked {
		tr.predict(t, steps)
	}
	for _, t := range tr.lost {
		t.kf.mean[7] = 0 // ByteTrack: a lost box keeps its height
		tr.predict(t, steps)
	}

	// 3: high detections against confirmed and lost tracks.
	tr.cand = tr.cand[:0]
	for _, t := range tr.tracked {
		if t.State == Tracked {
			tr.cand = append(tr.cand, t)
		}
	}
	tr.cand = append(tr.cand, tr.lost...)
	tr.associate(now, tr.cand, tr.cfg.High, 2, tr.cfg.MatchIoU)
	// 4: low detections against confirmed tracks still unmatched.
	tr.cand = tr.cand[:0]
	for _, t := range tr.tracked {
		if t.State == Tracked && t.Det < 0 {
			tr.cand = append(tr.cand, t)
		}
	}
	tr.associate(now, tr.cand, tr.cfg.Low, tr.cfg.High, tr.cfg.LowMatchIoU)
	// 5: tentative tracks take what high detections are left.
	tr.cand = tr.cand[:0]
	for _, t := range tr.tracked {
		if t.State == Tentative {
			tr.cand = append(tr.cand, t)
		}
	}
	tr.associate(now, tr.cand, tr.cfg.High, 2, tr.cfg.TentativeIoU)
	// 5b: and, still unmatched, what low ones are left (see the doc).
	tr.cand = slices.DeleteFunc(tr.cand, func(t *Track) bool { return t.Det >= 0 })
	tr.associate(now, tr.cand, tr.cfg.Low, tr.cfg.High, tr.cfg.TentativeIoU)

	tr.sweep(now)
	return tr.keep
}

// sweep moves tracks between states after association and starts new ones.
func (tr *Tracker) sweep(now int64) {
	tracked := tr.tracked[:0]
	tr.nextLost = tr.nextLost[:0]
	for _, t := range tr.tracked {
		switch {
		case t.Det >= 0:
			tracked = append(tracked, t)
		case t.State == Tentative:
			tr.free = append(tr.free, t)
		default:
			t.State = Lost
			tr.nextLost = append(tr.nextLost, t)
		}
	}
	for _, t := range tr.lost {
		switch {
		case t.Det >= 0:
			tracked = append(tracked, t)
		case tr.frame-t.lastFrame > int64(tr.cfg.Buffer):
			t.State = Removed
			tr.ended = append(tr.ended, t)
		default:
			tr.nextLost = append(tr.nextLost, t)
		}
	}
	tr.tracked = tracked
	tr.lost, tr.nextLost = tr.nextLost, tr.lost
	// 6: new tentative tracks.
	for i, d := range tr.dets {
		if tr.used[i] || d.Score < tr.cfg.NewTrack {
			continue
		}
		t := tr.alloc()
		t.kf.initiate(xyah(d.Box))
		t.Box = d.Box
		t.Det, t.Score, t.BestScore, t.Hits = i, d.Score, d.Score, 0
		t.FirstUs = now
		t.votes = [maxVotes]vote{}
		tr.hit(now, t, d)
		tr.tracked = append(tr.tracked, t)
	}
	tr.keep = tr.keep[:0]
	for _, t := range tr.tracked {
		if t.State == Tracked {
			tr.keep = append(tr.keep, t)
		}
	}
	tr.keep = append(tr.keep, tr.lost...)
}

func (tr *Tracker) alloc() *Track {
	if n := len(tr.free); n > 0 {
		t := tr.free[n-1]
		tr.free = tr.free[:n-1]
		slot := t.Slot
		*t = Track{Slot: slot}
		return t
	}
	t := &Track{Slot: tr.slots}
	tr.slots++
	return t
}

// maxFrameSteps caps the frames one Update predicts over: past a gap of
// this many frames the motion model is a guess, and a stream that stalled
// for seconds (or a clock that jumped) must not throw tracks across the
// picture.
const maxFrameSteps = 8

// frameSteps returns how many frame periods lie between the last Update
// and now: 1 at the camera's usual rate, more when frames were dropped (a
// busy agent, a stream hiccup) so that the prediction covers the time that
// passed, not one frame. The usual period is learned from the stream (a
// slow average, so one gap barely moves it); a clock that stands still or
// goes back counts as one frame.
func (tr *Tracker) frameSteps(now int64) int {
	last := tr.lastNow
	tr.lastNow = now
	if last == 0 || now <= last {
		return 1
	}
	dt := float64(now - last)
	if tr.interval == 0 {
		tr.interval = dt
		return 1
	}
	steps := int(math.Round(dt / tr.interval))
	tr.interval += (dt/float64(max(steps, 1)) - tr.interval) / 20
	return min(max(steps, 1), maxFrameSteps)
}

func (tr *Tracker) predict(t *Track, steps int) {
	for range steps {
		t.kf.predict()
	}
	t.Box = t.kf.box()
	t.extrapolate(tr.frame)
	t.Det, t.Score = -1, 0
}

// hit records detection d (index t.Det) as t's match.
func (tr *Tracker) hit(now int64, t *Track, d Detection) {
	t.observe(d.Box, tr.frame)
	t.Hits++
	t.LastUs = now
	t.lastFrame = tr.frame
	t.Score = d.Score
	t.BestScore = max(t.BestScore, d.Score)
	t.vote(d.Class, d.Score)
	if t.State == Lost {
		t.State = Tracked
	}
	if t.State == Tentative && t.Hits >= tr.cfg.MinHits {
		t.State = Tracked
		t.ID = tr.nextID
		tr.nextID++
	}
}

// associate matches the unused detections scoring in [lo, hi) to cands by
// IoU ≥ minIoU, greedily from the highest IoU.
func (tr *Tracker) associate(now int64, cands []*Track, lo, hi, minIoU float32) {
	tr.pairs = tr.pairs[:0]
	for ti, t := range cands {
		for di, d := range tr.dets {
			if tr.used[di] || d.Score < lo || d.Score >= hi {
				continue
			}
			if !tr.cfg.AnyClass && d.Class != t.Class {
				continue
			}
			if v := t.obsIoU(d.Box); v >= minIoU && v > 0 {
				tr.pairs = append(tr.pairs, pair{v, ti, di})
			}
		}
	}
	slices.SortFunc(tr.pairs, func(a, b pair) int {
		switch {
		case a.iou > b.iou:
			return -1
		case a.iou < b.iou:
			return 1
		case a.trk != b.trk:
			return a.trk - b.trk
		}
		return a.det - b.det
	})
	for _, p := range tr.pairs {
		t := cands[p.trk]
		if t.Det >= 0 || tr.used[p.det] {
			continue
		}
		d := tr.dets[p.det]
		tr.used[p.det] = true
		t.Det = p.det
		t.kf.update(xyah(d.Box))
		t.Box = t.kf.box()
		tr.hit(now, t, d)
	}
}

func valid(d Detection) bool {
	for _, v := range d.Box {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 1e7 {
			return false
		}
	}
	return d.Box[2] > d.Box[0] && d.Box[3] > d.Box[1] && !math.IsNaN(float64(d.Score))
}

// IoU is the intersection over union of two x1, y1, x2, y2 boxes
// (models.IoU).
func IoU(a, b [4]float32) float32 { return models.IoU(a, b) }

func iou(a, b [4]float32) float32 { return models.IoU(a, b) }
