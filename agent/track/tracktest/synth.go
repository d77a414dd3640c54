package tracktest

import (
	"math/rand/v2"

	"edgefleet/agent/track"
)

// Object is one synthetic object moving in a straight line at constant
// speed, in pixels and frames.
type Object struct {
	Start, End int        // first frame and one past the last it is in view
	Box        [4]float32 // box at Start
	V          [2]float32 // pixels per frame
	Class      int
	Missed     [][2]int // frame ranges [from, to) where the detector misses it
	Score      float32  // detection score; 0 means 0.8
	// Low are frame ranges [from, to) where the detection scores 0.3 (a
	// partly hidden object: ByteTrack's low detections).
	Low [][2]int
}

// Scene is a synthetic stream: objects with truth, detector noise and false
// positives.
type Scene struct {
	Frames  int
	Objects []Object
	Noise   float32 // σ of Gaussian noise on each box coordinate, pixels
	// FalsePositives is the chance per frame of a spurious box, scored
	// FPScore (0 means 0.3: a low detection) anywhere in W×H.
	FalsePositives float64
	FPScore        float32
	W, H           float32
	Seed           uint64
}

// StreamFrame is one frame of a generated stream.
type StreamFrame struct {
	Truth []Box
	Dets  []track.Detection
}

// Generate draws the scene's frames; the truth id of Objects[i] is i+1.
func (s Scene) Generate() []StreamFrame {
	rng := rand.New(rand.NewPCG(s.Seed, 13))
	out := make([]StreamFrame, s.Frames)
	for f := range out {
		var fr StreamFrame
		for i, o := range s.Objects {
			if f < o.Start || f >= o.End {
				continue
			}
			k := float32(f - o.Start)
			b := [4]float32{o.Box[0] + o.V[0]*k, o.Box[1] + o.V[1]*k, o.Box[2] + o.V[0]*k, o.Box[3] + o.V[1]*k}
			fr.Truth = append(fr.Truth, Box{ID: uint64(i + 1), Box: b})
			if missed(o.Missed, f) {
				continue
			}
			d := b
			for j := range d {
				d[j] += float32(rng.NormFloat64()) * s.Noise
			}
			score := o.Score
			if score == 0 {
				score = 0.8
			}
			if missed(o.Low, f) {
				score = 0.3
			}
			fr.Dets = append(fr.Dets, track.Detection{Box: d, Score: score, Class: o.Class})
		}
		if s.FalsePositives > 0 && rng.Float64() < s.FalsePositives {
			w, h := 20+rng.Float32()*40, 20+rng.Float32()*40
			x, y := rng.Float32()*(s.W-w), rng.Float32()*(s.H-h)
			sc := s.FPScore
			if sc == 0 {
				sc = 0.3
			}
			fr.Dets = append(fr.Dets, track.Detection{Box: [4]float32{x, y, x + w, y + h}, Score: sc, Class: rng.IntN(3)})
		}
		// Detector output order carries no identity.
		rng.Shuffle(len(fr.Dets), func(i, j int) { fr.Dets[i], fr.Dets[j] = fr.Dets[j], fr.Dets[i] })
		out[f] = fr
	}
	return out
}

func missed(r [][2]int, f int) bool {
	for _, m := range r {
		if f >= m[0] && f < m[1] {
			return true
		}
	}
	return false
}

// Run feeds a stream to tr and returns the frames to Score: the truth and
// the tracks matched in each frame (lost tracks are not reported, as
// ByteTrack outputs only its tracked objects).
func Run(tr *track.Tracker, stream []StreamFrame) []Frame {
	out := make([]Frame, len(stream))
	for i, f := range stream {
		tr.Update(int64(i), f.Dets)
		var hyp []Box
		for _, t := range tr.Tracks() {
			if t.State == track.Tracked {
				hyp = append(hyp, Box{ID: t.ID, Box: t.Box})
			}
		}
		out[i] = Frame{Truth: f.Truth, Hyp: hyp}
	}
	return out
}
