package kernel

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDepthwiseS8 compares the kernel (assembly where the CPU has it) and
// its plain-Go twin with a direct formula on channel counts with and
// without a 16-channel tail, 0 to 9 taps, 1 to 10 pixels per call, extreme
// inputs, zero points and multipliers, in both roundings.
func TestDepthwiseS8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []int{1, 7, 16, 17, 33, 64, 80, 100, 300} {
		for _, nt := range []int{0, 1, 4, 9} {
			for _, ruy := range []bool{false, true} {
				npix, step := 1+r.IntN(10), 5
				src := make([]int8, c*12+npix*step)
				for i := range src {
					src[i] = int8(r.IntN(256) - 128)
				}
				src[0], src[1], src[2] = -128, 127, -128
				filt8 := make([]int8, c*9)
				for i := range filt8 {
					filt8[i] = int8(r.IntN(256) - 128)
				}
				filt8[0], filt8[1], filt8[2] = -128, -128, 127
				filt := WidenDepthwiseS8(filt8)
				var taps []int32
				for t := 0; t < nt; t++ {
					taps = append(taps, int32(r.IntN(c*12-c+1)), int32(r.IntN(9)*c))
				}
				if nt > 0 {
					taps[0], taps[1] = 0, 0
				}
				zp := int32(r.IntN(256) - 128)
				if c == 7 {
					zp = 127
				}
				bias, mult, shift := make([]int32, c), make([]int32, c), make([]int32, c)
				for i := range bias {
					bias[i] = int32(r.IntN(1<<20) - 1<<19)
					mult[i] = 1<<30 + int32(r.IntN(1<<30))
					shift[i] = int32(r.IntN(14) - 12)
				}
				shift[0], mult[0] = -31, 1<<31-1
				shift[c-1] = 2
				newRq := NewRequant
				if ruy {
					newRq = NewRequantRuy
				}
				q, err := newRq(c, bias, mult, shift, -3, -120, 127)
				if err != nil {
					t.Fatal(err)
				}
				want := make([]int8, npix*c+1)
				for p := 0; p < npix; p++ {
					for i := 0; i < c; i++ {
						var acc int32
						for t := 0; t < nt; t++ {
							acc += (int32(src[int(taps[2*t])+p*step+i]) - zp) * int32(filt8[int(taps[2*t+1])+i])
						}
						acc += bias[i]
						var v int32
						if ruy {
							v = MultiplyByQuantizedMultiplierRuy(acc, mult[i], int(shift[i]))
						} else {
							v = MultiplyByQuantizedMultiplier(acc, mult[i], int(shift[i]))
						}
						want[p*c+i] = int8(max(-120, min(127, v-3)))
					}
				}
				for _, impl := range []string{"DepthwiseS8", "depthwiseS8Go"} {
					got := make([]int8, npix*c+1)
					if impl == "DepthwiseS8" {
						DepthwiseS8(got, src, filt, taps, npix, step, zp, q)
					} else {
						depthwiseS8Go(got, src, filt, taps, npix, step, zp, q)
					}
					if !slices.Equal(got, want) {
						t.Errorf("%s c=%d taps=%d ruy=%v: got %v\nwant %v", impl, c, nt, ruy, got, want)
					}
				}
			}
		}
	}
}

func TestDepthwiseS8Bounds(t *testing.T) {
	q, err := NewRequant(16, nil, make([]int32, 16), make([]int32, 16), 0, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		src, dst int
		npix     int
		taps     []int32
	}{
		{"tap past src", 20, 16, 1, []int32{5, 0}},
		{"last pixel past src", 40, 32, 2, []int32{10, 0}},
		{"past dst", 40, 16, 2, []int32{0, 0}},
		{"past filter", 40, 16, 1, []int32{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("did not panic")
				}
			}()
			DepthwiseS8(make([]int8, tc.dst), make([]int8, tc.src), make([]int32, 16), tc.taps, tc.npix, 16, 0, q)
		})
	}
}

// TestDepthwiseAccF32 compares the float kernel with a float64 sum.
func TestDepthwiseAccF32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 4))
	for _, c := range []int{1, 16, 17, 80} {
		for _, nt := range []int{0, 1, 9} {
			src, filt := make([]float32, c*12), make([]float32, c*9)
			for i := range src {
				src[i] = float32(r.NormFloat64())
			}
			for i := range filt {
				filt[i] = float32(r.NormFloat64())
			}
			var taps []int32
			for t := 0; t < nt; t++ {
				taps = append(taps, int32(r.IntN(len(src)-c+1)), int32(r.IntN(9)*c))
			}
			acc := make([]float32, c)
			want := make([]float64, c)
			for i := range acc {
				acc[i] = float32(r.NormFloat64())
				want[i] = float64(acc[i])
			}
			for t := 0; t < nt; t++ {
				for i := range want {
					want[i] += float64(src[int(taps[2*t])+i]) * float64(filt[int(taps[2*t+1])+i])
				}
			}
			DepthwiseAccF32(acc, src, filt, taps)
			for i := range acc {
				if d := float64(acc[i]) - want[i]; d > 1e-5 || d < -1e-5 {
					t.Errorf("c=%d taps=%d: acc[%d] = %g, want %g", c, nt, i, acc[i], want[i])
				}
			}
		}
	}
}

// BenchmarkDepthwiseS8 runs a 3×3 stride-1 depthwise layer of yolo11n
// (80×80 pixels, 80 and 64 channels) on an input padded by hand, one
// DepthwiseS8 call per output row, with the kernel and its plain-Go twin.
func BenchmarkDepthwiseS8(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, c := range []int{64, 80} {
		const h, w = 80, 80
		src := make([]int8, (h+2)*(w+2)*c)
		for i := range src {
			src[i] = int8(r.IntN(256) - 128)
		}
		filt8 := make([]int8, 9*c)
		for i := range filt8 {
			filt8[i] = int8(r.IntN(256) - 128)
		}
		filt := WidenDepthwiseS8(filt8)
		mult, shift := make([]int32, c), make([]int32, c)
		for i := range mult {
			mult[i], shift[i] = 1<<30+int32(r.IntN(1<<30)), -8
		}
		q, err := NewRequant(c, nil, mult, shift, 0, -128, 127)
		if err != nil {
			b.Fatal(err)
		}
		dst := make([]int8, h*w*c)
		var taps []int32
		for ky := 0; ky < 3; ky++ {
			for kx := 0; kx < 3; kx++ {
				taps = append(taps, int32((ky*(w+2)+kx)*c), int32((ky*3+kx)*c))
			}
		}
		rowTaps := make([]int32, len(taps))
		for _, impl := range []string{"kernel", "go"} {
			b.Run(fmt.Sprintf("%s/80x80x%d_3x3", impl, c), func(b *testing.B) {
				layer := func() {
					for oy := 0; oy < h; oy++ {
						for t := range taps {
							rowTaps[t] = taps[t]
							if t%2 == 0 {
								rowTaps[t] += int32(oy * (w + 2) * c)
							}
						}
						d := dst[oy*w*c:]
						if impl == "kernel" {
							DepthwiseS8(d, src, filt, rowTaps, w, c, 7, q)
						} else {
							depthwiseS8Go(d, src, filt, rowTaps, w, c, 7, q)
						}
					}
				}
				layer() // warm caches: make bench runs once
				cpu := onThread(func() {
					for b.Loop() {
						layer()
					}
				})
				reportGMACs(b, h*w, c, 9, cpu)
			})
		}
	}
}
