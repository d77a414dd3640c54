package track

// kalman is ByteTrack's constant-velocity Kalman filter on the box state
// (cx, cy, a, h): centre, aspect ratio w/h and height, each with a velocity.
// The motion and observation matrices act on each of the four coordinates
// separately and every noise matrix is diagonal, so ByteTrack's 8×8
// covariance is block diagonal: four independent 2×2 covariances (position,
// velocity) give exactly its numbers without the matrix algebra.
type kalman struct {
	mean [8]float64    // cx, cy, a, h, vcx, vcy, va, vh
	cov  [4][3]float64 // per coordinate: var(pos), cov(pos, vel), var(vel)
}

// ByteTrack's noise weights (relative to the box height).
const (
	stdWeightPosition = 1.0 / 20
	stdWeightVelocity = 1.0 / 160
)

// xyah converts x1, y1, x2, y2 to centre, aspect and height.
func xyah(b [4]float32) [4]float64 {
	w := float64(b[2] - b[0])
	h := float64(b[3] - b[1])
	return [4]float64{float64(b[0]) + w/2, float64(b[1]) + h/2, w / h, h}
}

// initiate starts the filter at a measured box.
func (k *kalman) initiate(m [4]float64) {
	h := m[3]
	for i := 0; i < 4; i++ {
		k.mean[i] = m[i]
		k.mean[4+i] = 0
	}
	pos := [4]float64{2 * stdWeightPosition * h, 2 * stdWeightPosition * h, 1e-2, 2 * stdWeightPosition * h}
	vel := [4]float64{10 * stdWeightVelocity * h, 10 * stdWeightVelocity * h, 1e-5, 10 * stdWeightVelocity * h}
	for i := 0; i < 4; i++ {
		k.cov[i] = [3]float64{pos[i] * pos[i], 0, vel[i] * vel[i]}
	}
}

// predict moves the state one frame ahead.
func (k *kalman) predict() {
	h := k.mean[3]
	pos := [4]float64{stdWeightPosition * h, stdWeightPosition * h, 1e-2, stdWeightPosition * h}
	vel := [4]float64{stdWeightVelocity * h, stdWeightVelocity * h, 1e-5, stdWeightVelocity * h}
	for i := 0; i < 4; i++ {
		k.mean[i] += k.mean[4+i]
		c := &k.cov[i]
		p00 := c[0] + 2*c[1] + c[2] + pos[i]*pos[i]
		p01 := c[1] + c[2]
		p11 := c[2] + vel[i]*vel[i]
		*c = [3]float64{p00, p01, p11}
	}
}

// update corrects the state with a measured box.
func (k *kalman) update(m [4]float64) {
	h := k.mean[3]
	r := [4]float64{stdWeightPosition * h, stdWeightPosition * h, 1e-1, stdWeightPosition * h}
	for i := 0; i < 4; i++ {
		c := &k.cov[i]
		s := c[0] + r[i]*r[i]
		if s <= 0 {
			continue
		}
		k0, k1 := c[0]/s, c[1]/s
		innov := m[i] - k.mean[i]
		k.mean[i] += k0 * innov
		k.mean[4+i] += k1 * innov
		*c = [3]float64{(1 - k0) * c[0], (1 - k0) * c[1], c[2] - k1*c[1]}
	}
}

// box returns the state's box as x1, y1, x2, y2.
func (k *kalman) box() [4]float32 {
	w := k.mean[2] * k.mean[3]
	h := k.mean[3]
	x1 := k.mean[0] - w/2
	y1 := k.mean[1] - h/2
	return [4]float32{float32(x1), float32(y1), float32(x1 + w), float32(y1 + h)}
}
