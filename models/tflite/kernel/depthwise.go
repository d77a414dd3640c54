package kernel

import "fmt"

// DepthwiseS8 computes npix output pixels of an int8 depthwise
// convolution with depth multiplier 1 and c = q.N() channels. Pixel p
// reads its taps at p·step past those given: taps holds (source offset,
// filter offset) pairs of the taps inside the input, and for channel i
//
//	acc = Σ_t (src[taps[2t] + p·step + i] - zp) · f[taps[2t+1] + i]
//	dst[p·c + i] = acc requantized by q for channel i
//
// where f is the int8 filter as WidenDepthwiseS8 lays it out in filt. The
// sum is exact in int32 (wrapping), q rounds twice (NewRequant) or once
// (NewRequantRuy). AVX-512 VNNI on amd64 with the double rounding, plain Go
// otherwise. It panics when an offset reaches past src, filt or dst (a bug
// in the caller).
func DepthwiseS8(dst, src []int8, filt, taps []int32, npix, step int, zp int32, q *Requant) {
	c := q.N()
	if npix <= 0 || c == 0 {
		return
	}
	if len(dst) < npix*c || step < 0 {
		panic(fmt.Sprintf("kernel: DepthwiseS8: %d pixels of %d channels in %d outputs, step %d", npix, c, len(dst), step))
	}
	checkTaps("DepthwiseS8", c, (npix-1)*step, len(src), len(filt), taps)
	nt := len(taps) / 2
	if hasDepthwiseS8Arch && nt > 0 && !q.ruy {
		tail := tailMask(c)
		depthwiseS8Arch(&dst[0], &src[0], &filt[0], &taps[0], nt, npix, step, c, zp, &q.vec[0], &q.consts[0], tail)
		return
	}
	depthwiseS8Go(dst, src, filt, taps, npix, step, zp, q)
}

// WidenDepthwiseS8 lays an int8 depthwise filter out for DepthwiseS8: each
// weight in the low 16 bits of an int32 whose high 16 bits are zero, so that
// one VPDPWSSD multiplies it with a sign-extended input byte and adds the
// product in.
func WidenDepthwiseS8(w []int8) []int32 {
	f := make([]int32, len(w))
	for i, v := range w {
		f[i] = int32(uint16(v))
	}
	return f
}

// depthwiseS8Go is DepthwiseS8 in plain Go.
func depthwiseS8Go(dst, src []int8, filt, taps []int32, npix, step int, zp int32, q *Requant) {
	c := q.N()
	var buf [256]int32
	acc := buf[:]
	if c > len(buf) {
		acc = make([]int32, c)
	}
	acc = acc[:c]
	for p := 0; p < npix; p++ {
		clear(acc)
		for t := 0; t+1 < len(taps); t += 2 {
			s := src[int(taps[t])+p*step:][:c]
			f := filt[taps[t+1]:][:c]
			for i := range acc {
				acc[i] += (int32(s[i]) - zp) * int32(int16(f[i]))
			}
		}
		d := dst[p*c:][:c]
		for i, v := range acc {
			d[i] = q.apply(v, i)
		}
	}
}

// DepthwiseAccF32 is DepthwiseAccS8 on float32: for each tap t,
// acc[i] += src[taps[2t]+i] · filt[taps[2t+1]+i], with fused multiply-adds
// (AVX-512) on the whole multiple of 16 channels where the CPU has them.
func DepthwiseAccF32(acc, src, filt []float32, taps []int32) {
	c := len(acc)
	checkTaps("DepthwiseAccF32", c, 0, len(src), len(filt), taps)
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
// elements; the tap's source offset plus more) or the filter (nf): the
// assembly does not check.
func checkTaps(op string, c, more, ns, nf int, taps []int32) {
	for t := 0; t+1 < len(taps); t += 2 {
		if taps[t] < 0 || taps[t+1] < 0 || int(taps[t])+more+c > ns || int(taps[t+1])+c > nf {
			panic(fmt.Sprintf("kernel: %s: tap %d at %d/%d of %d channels past src %d or filter %d", op, t/2, taps[t], taps[t+1], c, ns, nf))
		}
	}
}
