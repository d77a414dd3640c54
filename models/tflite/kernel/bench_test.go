package kernel

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// yoloShapes are (m, n, k) of convolutions in yolov8n at 640×640 as GEMMs:
// m = output pixels, n = output channels, k = kh·kw·cin.
var yoloShapes = []struct {
	name    string
	m, n, k int
}{
	{"stem_3x3_3to16", 102400, 16, 27},
	{"3x3_16to32", 25600, 32, 144},
	{"1x1_32to32", 25600, 32, 32},
	{"3x3_32to64", 6400, 64, 288},
	{"3x3_64to80", 6400, 80, 576},
	{"3x3_64to128", 1600, 128, 576},
	{"1x1_128to128", 1600, 128, 128},
	{"3x3_128to256", 400, 256, 1152},
}

func BenchmarkGemmS8(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range yoloShapes {
		a := make([]int8, s.m*s.k)
		w := make([]int8, s.n*s.k)
		fillS8(r, a, fillRandom, false)
		fillS8(r, w, fillRandom, true)
		c := make([]int32, s.m*s.n)
		for _, im := range s8Impls {
			p := packS8(im, s.n, s.k, w)
			b.Run(fmt.Sprintf("%s/%s", im, s.name), func(b *testing.B) {
				p.Gemm(s.m, a, s.k, c, s.n) // warm caches and fault in c: make bench runs once
				cpu := onThread(func() {
					for b.Loop() {
						p.Gemm(s.m, a, s.k, c, s.n)
					}
				})
				reportGMACs(b, s.m, s.n, s.k, cpu)
			})
		}
	}
}

func BenchmarkGemmRequant(b *testing.B) { benchGemmRequant(b, NewRequant, false) }

// BenchmarkGemmRequantRuy is BenchmarkGemmRequant with the single rounding;
// the unfused sub-benchmarks run Gemm and then requantize in Go, as the
// interpreter did before the fused mode existed.
func BenchmarkGemmRequantRuy(b *testing.B) { benchGemmRequant(b, NewRequantRuy, true) }

func benchGemmRequant(b *testing.B, newRequant func(n int, bias, mult, shift []int32, outZero, min, max int32) (*Requant, error), unfused bool) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range yoloShapes {
		a := make([]int8, s.m*s.k)
		w := make([]int8, s.n*s.k)
		fillS8(r, a, fillRandom, false)
		fillS8(r, w, fillRandom, true)
		out := make([]int8, s.m*s.n)
		mult := make([]int32, s.n)
		shift := make([]int32, s.n)
		for j := range mult {
			mult[j], shift[j] = 1<<30+int32(j)*12345, -12
		}
		q, err := newRequant(s.n, make([]int32, s.n), mult, shift, -3, -128, 127)
		if err != nil {
			b.Fatal(err)
		}
		for _, im := range s8Impls {
			p := packS8(im, s.n, s.k, w)
			b.Run(fmt.Sprintf("%s/%s", im, s.name), func(b *testing.B) {
				p.GemmRequant(s.m, a, s.k, q, out, s.n)
				cpu := onThread(func() {
					for b.Loop() {
						p.GemmRequant(s.m, a, s.k, q, out, s.n)
					}
				})
				reportGMACs(b, s.m, s.n, s.k, cpu)
			})
		}
		if !unfused {
			continue
		}
		p := packS8(bestS8, s.n, s.k, w)
		acc := make([]int32, s.m*s.n)
		b.Run(fmt.Sprintf("%s-unfused/%s", bestS8, s.name), func(b *testing.B) {
			loop := func() {
				p.Gemm(s.m, a, s.k, acc, s.n)
				for i, v := range acc {
					out[i] = q.apply(v, i%s.n)
				}
			}
			loop()
			cpu := onThread(func() {
				for b.Loop() {
					loop()
				}
			})
			reportGMACs(b, s.m, s.n, s.k, cpu)
		})
	}
}

func BenchmarkGemmF32(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range yoloShapes {
		a := make([]float32, s.m*s.k)
		w := make([]float32, s.n*s.k)
		for i := range a {
			a[i] = r.Float32()
		}
		for i := range w {
			w[i] = r.Float32()
		}
		c := make([]float32, s.m*s.n)
		for _, im := range f32Impls {
			p := packF32(im, s.n, s.k, w)
			b.Run(fmt.Sprintf("%s/%s", im, s.name), func(b *testing.B) {
				p.Gemm(s.m, a, s.k, c, s.n) // warm caches and fault in c: make bench runs once
				cpu := onThread(func() {
					for b.Loop() {
						p.Gemm(s.m, a, s.k, c, s.n)
					}
				})
				reportGMACs(b, s.m, s.n, s.k, cpu)
			})
		}
	}
}

// onThread runs f locked to one OS thread and returns the CPU time that
// thread spent, or 0 where that is not measured.
func onThread(f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := threadCPU()
	f()
	if t0 == 0 {
		return 0
	}
	return threadCPU() - t0
}

// reportGMACs reports the speed by wall clock and, where measured, by the
// CPU time of the benchmark's thread (cpu-GMAC/s), which the other loads
// of a shared machine disturb far less.
func reportGMACs(b *testing.B, m, n, k int, cpu time.Duration) {
	macs := float64(m) * float64(n) * float64(k) * float64(b.N)
	b.ReportMetric(macs/b.Elapsed().Seconds()/1e9, "GMAC/s")
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/op")
	if cpu > 0 {
		b.ReportMetric(macs/cpu.Seconds()/1e9, "cpu-GMAC/s")
	}
}

// reportNsPerByte reports an elementwise kernel's cost per input byte, in
// wall and (where measured) thread CPU time.
func reportNsPerByte(b *testing.B, n int, cpu time.Duration) {
	bytes := float64(n) * float64(b.N)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/bytes, "ns/B")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/bytes, "cpu-ns/B")
	}
}
