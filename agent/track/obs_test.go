package track

import "testing"

// TestExtrapolate: the box of the last two sightings moves on at their
// pace, per frame since the last one, and is not used past maxFrameSteps
// frames without a sighting.
func TestExtrapolate(t *testing.T) {
	var tk Track
	tk.observe([4]float32{0, 0, 10, 10}, 1)
	tk.extrapolate(2)
	if tk.obsOK {
		t.Fatal("one sighting extrapolates")
	}
	tk.observe([4]float32{4, 2, 14, 12}, 3) // 2 px, 1 px a frame
	for _, tc := range []struct {
		frame int64
		ok    bool
		box   [4]float32
	}{
		{4, true, [4]float32{6, 3, 16, 13}},
		{3 + maxFrameSteps, true, [4]float32{4 + 2*maxFrameSteps, 2 + maxFrameSteps, 14 + 2*maxFrameSteps, 12 + maxFrameSteps}},
		{4 + maxFrameSteps, false, [4]float32{}},
	} {
		tk.extrapolate(tc.frame)
		if tk.obsOK != tc.ok || tc.ok && tk.obsBox != tc.box {
			t.Errorf("frame %d: ok %v box %v, want %v %v", tc.frame, tk.obsOK, tk.obsBox, tc.ok, tc.box)
		}
		if !tc.ok && tk.obsIoU(tk.obsBox) != 0 { // tk.Box, the filter's, is empty here
			t.Errorf("frame %d: obsIoU uses the stale extrapolation", tc.frame)
		}
	}
}
