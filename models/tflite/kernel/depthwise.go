package kernel

import "fmt"

// DepthwiseAccS8 adds the taps of one int8 depthwise-convolution output
// pixel to its c = len(acc) int32 accumulators: for each tap t,
//
//	acc[i] += (src[taps[2t]+i] - zp) · filt[taps[2t+1]+i]
//
// taps holds (source offset, filter offset) pairs of the taps inside the
// input; the filter is widened to int32 ahead of time. Exact in int32; AVX-512
// on amd64 for the whole multiple of 16 channels, plain Go otherwise. It
// panics when an offset reaches past src or filt (a bug in the caller).
func DepthwiseAccS8(acc []int32, src []int8, filt []int32, taps []int32, zp int32) {
	c := len(acc)
	checkTaps("DepthwiseAccS8", c, len(src), len(filt), taps)
	nt := len(taps) / 2
	n := 0
	if hasDepthwiseArch && nt > 0 {
		n = c &^ 15
		if n > 0 {
			depthwiseAccArch(&acc[0], &src[0], &filt[0], &taps[0], nt, n, zp)
		}
	}
	if n == c {
		return
	}
	for t := 0; t < nt; t++ {
		s := src[int(taps[2*t])+n : int(taps[2*t])+c]
		f := filt[int(taps[2*t+1])+n : int(taps[2*t+1])+c]
		a := acc[n:c]
		for i := range a {
			a[i] += (int32(s[i]) - zp) * f[i]
		}
	}
}

// DepthwiseAccF32 is DepthwiseAccS8 on float32: for each tap t,
// acc[i] += src[taps[2t]+i] · filt[taps[2t+1]+i], with fused multiply-adds
// (AVX-512) on the whole multiple of 16 channels where the CPU has them.
func DepthwiseAccF32(acc, src, filt []float32, taps []int32) {
	c := len(acc)
	checkTaps("DepthwiseAccF32", c, len(src), len(filt), taps)
	nt := len(taps) / 2
	n := 0
	if hasDepthwiseArch && nt > 0 {
		n = c &^ 15
		if n > 0 {
			depthwiseAccF32Arch(&acc[0], &src[0], &filt[0], &taps[0], nt, n)
		}
	}
	if n == c {
		return
	}
	for t := 0; t < nt; t++ {
		s := src[int(taps[2*t])+n : int(taps[2*t])+c]
		f := filt[int(taps[2*t+1])+n : int(taps[2*t+1])+c]
		a := acc[n:c]
		for i := range a {
			a[i] += s[i] * f[i]
		}
	}
}

// checkTaps panics when a tap of c channels reaches past the source (ns
// elements) or the filter (nf): the assembly does not check.
func checkTaps(op string, c, ns, nf int, taps []int32) {
	for t := 0; t+1 < len(taps); t += 2 {
		if taps[t] < 0 || taps[t+1] < 0 || int(taps[t])+c > ns || int(taps[t+1])+c > nf {
			panic(fmt.Sprintf("kernel: %s: tap %d at %d/%d of %d channels past src %d or filter %d", op, t/2, taps[t], taps[t+1], c, ns, nf))
		}
	}
}
