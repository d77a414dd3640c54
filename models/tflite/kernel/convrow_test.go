package kernel

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestConvRowS8 compares ConvRowS8.Run (assembly where the CPU has it) and
// its plain-Go twin with the direct sum on kernel shapes of 1 to 5
// channels, channel counts with and without a 16-channel tail, pixel counts
// around the 4-pixel block, extreme values and both roundings; src ends
// exactly where Reach says.
func TestConvRowS8(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, sh := range []struct{ kh, kw, c int }{{3, 3, 3}, {3, 3, 4}, {6, 6, 3}, {1, 1, 5}, {2, 3, 1}, {3, 2, 3}} {
		for _, n := range []int{1, 8, 16, 20, 33, 64} {
			for _, npix := range []int{1, 3, 4, 5, 9} {
				for _, ruy := range []bool{true, false} {
					name := fmt.Sprintf("%dx%dx%d_to%d_px%d_ruy%v", sh.kh, sh.kw, sh.c, n, npix, ruy)
					span := sh.kw * sh.c
					stride := span + r.IntN(20)
					step := 2 * sh.c
					w := make([]int8, n*sh.kh*span)
					for i := range w {
						w[i] = int8(r.IntN(256) - 128)
					}
					w[0] = -128
					p, err := PackConvRowS8(n, sh.kh, sh.kw, sh.c, stride, w)
					if err != nil {
						t.Fatal(err)
					}
					src := make([]int8, (npix-1)*step+p.Reach())
					for i := range src {
						src[i] = int8(r.IntN(256) - 128)
					}
					src[0], src[1] = -128, 127
					bias, mult, shift := make([]int32, n), make([]int32, n), make([]int32, n)
					for j := range bias {
						bias[j] = int32(r.IntN(1<<16)) - 1<<15 + 5*p.RowSums()[j]
						mult[j] = 1<<30 + int32(r.IntN(1<<30))
						shift[j] = int32(r.IntN(6) - 10)
					}
					newRq, mbqm := NewRequant, MultiplyByQuantizedMultiplier
					if ruy {
						newRq, mbqm = NewRequantRuy, MultiplyByQuantizedMultiplierRuy
					}
					q, err := newRq(n, bias, mult, shift, 4, -128, 120)
					if err != nil {
						t.Fatal(err)
					}
					want := make([]int8, npix*n)
					for i := 0; i < npix; i++ {
						for j := 0; j < n; j++ {
							acc := bias[j]
							for ky := 0; ky < sh.kh; ky++ {
								for x := 0; x < span; x++ {
									acc += int32(src[i*step+ky*stride+x]) * int32(w[(j*sh.kh+ky)*span+x])
								}
							}
							want[i*n+j] = int8(max(-128, min(120, mbqm(acc, mult[j], int(shift[j]))+4)))
						}
					}
					got, gotGo := make([]int8, npix*n), make([]int8, npix*n)
					p.Run(got, src, npix, step, q)
					p.runGo(gotGo, src, npix, step, q)
					if !slices.Equal(got, want) {
						t.Errorf("%s: Run differs from the direct sum:\n got %v\nwant %v", name, got, want)
					}
					if !slices.Equal(gotGo, want) {
						t.Errorf("%s: runGo differs from the direct sum", name)
					}
				}
			}
		}
	}
}

func TestConvRowS8Bounds(t *testing.T) {
	p, err := PackConvRowS8(16, 3, 3, 3, 30, make([]int8, 16*27))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := NewRequantRuy(16, nil, make([]int32, 16), make([]int32, 16), 0, -128, 127)
	defer func() {
		if recover() == nil {
			t.Error("a source one byte short did not panic")
		}
	}()
	p.Run(make([]int8, 32), make([]int8, 6+p.Reach()-1), 2, 6, q)
}

// BenchmarkConvRowS8 runs the stem of the YOLO networks at 640×640 (3×3
// stride 2 from 3 to 16 channels, 320 rows of 320 pixels) from a padded
// image, with the kernel and its plain-Go twin.
func BenchmarkConvRowS8(b *testing.B) {
	const h, w, c, oc = 642, 642, 3, 16
	r := rand.New(rand.NewPCG(1, 1))
	src := make([]int8, h*w*c+16)
	for i := range src {
		src[i] = int8(r.IntN(256) - 128)
	}
	wt := make([]int8, oc*27)
	for i := range wt {
		wt[i] = int8(r.IntN(256) - 128)
	}
	p, err := PackConvRowS8(oc, 3, 3, c, w*c, wt)
	if err != nil {
		b.Fatal(err)
	}
	mult, shift := make([]int32, oc), make([]int32, oc)
	for i := range mult {
		mult[i], shift[i] = 1<<30, -8
	}
	q, _ := NewRequantRuy(oc, nil, mult, shift, 0, -128, 127)
	dst := make([]int8, 320*320*oc)
	for _, impl := range []string{"kernel", "go"} {
		b.Run(impl+"/640x640x3_3x3s2_to16", func(b *testing.B) {
			layer := func() {
				for oy := 0; oy < 320; oy++ {
					s, d := src[2*oy*w*c:], dst[oy*320*oc:]
					if impl == "kernel" {
						p.Run(d, s, 320, 2*c, q)
					} else {
						p.runGo(d, s, 320, 2*c, q)
					}
				}
			}
			layer() // warm caches: make bench runs once
			cpu := onThread(func() {
				for b.Loop() {
					layer()
				}
			})
			reportGMACs(b, 320*320, oc, 27, cpu)
		})
	}
}
