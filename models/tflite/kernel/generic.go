package kernel

// gemmS8Go is the plain-Go int8 kernel: c = a·bᵀ with b n×k row-major.
// It works on 2 rows × 4 columns at a time so that every load of a feeds
// four multiplies and every load of b two.
func gemmS8Go(m, n, k int, a []int8, lda int, b []int8, c []int32, ldc int) {
	i := 0
	for ; i+2 <= m; i += 2 {
		a0 := a[i*lda : i*lda+k]
		a1 := a[(i+1)*lda : (i+1)*lda+k]
		c0 := c[i*ldc : i*ldc+n]
		c1 := c[(i+1)*ldc : (i+1)*ldc+n]
		j := 0
		for ; j+4 <= n; j += 4 {
			b0 := b[j*k : j*k+k]
			b1 := b[(j+1)*k : (j+1)*k+k]
			b2 := b[(j+2)*k : (j+2)*k+k]
			b3 := b[(j+3)*k : (j+3)*k+k]
			var s00, s01, s02, s03, s10, s11, s12, s13 int32
			for x := range a0 {
				u, v := int32(a0[x]), int32(a1[x])
				w0, w1, w2, w3 := int32(b0[x]), int32(b1[x]), int32(b2[x]), int32(b3[x])
				s00 += u * w0
				s01 += u * w1
				s02 += u * w2
				s03 += u * w3
				s10 += v * w0
				s11 += v * w1
				s12 += v * w2
				s13 += v * w3
			}
			c0[j], c0[j+1], c0[j+2], c0[j+3] = s00, s01, s02, s03
			c1[j], c1[j+1], c1[j+2], c1[j+3] = s10, s11, s12, s13
		}
		for ; j < n; j++ {
			c0[j] = dotS8(a0, b[j*k:j*k+k])
			c1[j] = dotS8(a1, b[j*k:j*k+k])
		}
	}
	if i < m {
		a0 := a[i*lda : i*lda+k]
		c0 := c[i*ldc : i*ldc+n]
		for j := range c0 {
			c0[j] = dotS8(a0, b[j*k:j*k+k])
		}
	}
}

func dotS8(a, b []int8) int32 {
	b = b[:len(a)]
	var s int32
	for x, v := range a {
		s += int32(v) * int32(b[x])
	}
	return s
}

// gemmF32Go is the plain-Go float32 kernel, blocked like gemmS8Go. With acc
// every sum starts from c's value instead of zero.
func gemmF32Go(m, n, k int, a []float32, lda int, b []float32, c []float32, ldc int, acc bool) {
	i := 0
	for ; i+2 <= m; i += 2 {
		a0 := a[i*lda : i*lda+k]
		a1 := a[(i+1)*lda : (i+1)*lda+k]
		c0 := c[i*ldc : i*ldc+n]
		c1 := c[(i+1)*ldc : (i+1)*ldc+n]
		j := 0
		for ; j+4 <= n; j += 4 {
			b0 := b[j*k : j*k+k]
			b1 := b[(j+1)*k : (j+1)*k+k]
			b2 := b[(j+2)*k : (j+2)*k+k]
			b3 := b[(j+3)*k : (j+3)*k+k]
			var s00, s01, s02, s03, s10, s11, s12, s13 float32
			if acc {
				s00, s01, s02, s03 = c0[j], c0[j+1], c0[j+2], c0[j+3]
				s10, s11, s12, s13 = c1[j], c1[j+1], c1[j+2], c1[j+3]
			}
			for x := range a0 {
				u, v := a0[x], a1[x]
				w0, w1, w2, w3 := b0[x], b1[x], b2[x], b3[x]
				s00 += u * w0
				s01 += u * w1
				s02 += u * w2
				s03 += u * w3
				s10 += v * w0
				s11 += v * w1
				s12 += v * w2
				s13 += v * w3
			}
			c0[j], c0[j+1], c0[j+2], c0[j+3] = s00, s01, s02, s03
			c1[j], c1[j+1], c1[j+2], c1[j+3] = s10, s11, s12, s13
		}
		for ; j < n; j++ {
			c0[j] = dotF32(accInit(acc, c0[j]), a0, b[j*k:j*k+k])
			c1[j] = dotF32(accInit(acc, c1[j]), a1, b[j*k:j*k+k])
		}
	}
	if i < m {
		a0 := a[i*lda : i*lda+k]
		c0 := c[i*ldc : i*ldc+n]
		for j := range c0 {
			c0[j] = dotF32(accInit(acc, c0[j]), a0, b[j*k:j*k+k])
		}
	}
}

// gemmSegsF32Go is GemmSegs in plain Go: every sum in gemmF32Go's order,
// one product at a time from zero over the concatenated row.
func gemmSegsF32Go(m, n, k int, a []float32, lda, segs, segStride int, b []float32, c []float32, ldc int) {
	kr := k / segs
	for i := 0; i < m; i++ {
		ci := c[i*ldc : i*ldc+n]
		for j := range ci {
			bj := b[j*k : j*k+k]
			var s float32
			for q := 0; q < segs; q++ {
				aq := a[q*segStride+i*lda : q*segStride+i*lda+kr]
				bq := bj[q*kr : q*kr+kr]
				for x, v := range aq {
					s += v * bq[x]
				}
			}
			ci[j] = s
		}
	}
}

// accInit is where a sum of gemmF32Go starts: c with acc, else zero.
func accInit(acc bool, c float32) float32 {
	if acc {
		return c
	}
	return 0
}

// dotF32 is s + Σ a[x]·b[x], summed in order.
func dotF32(s float32, a, b []float32) float32 {
	b = b[:len(a)]
	for x, v := range a {
		s += v * b[x]
	}
	return s
}
