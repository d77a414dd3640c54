package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"edgefleet/agent"
	"edgefleet/agent/engine"
	"edgefleet/internal/cli"
	"edgefleet/models"
	"edgefleet/models/annotate"
	"edgefleet/models/imageio"
	"edgefleet/models/meta"
	"edgefleet/models/tflite"
	"edgefleet/models/yolo"
)

func init() {
	commands["detect"] = command{summary: "run a model on images", args: "--model PATH IMAGE...", long: detectLong, run: runDetect}
}

const detectLong = `Runs a YOLO TFLite model on PNG/JPEG images and prints one line per image.`

// detectFlags are the settings of one detect run.
type detectFlags struct {
	model, labels     string
	conf, iou         float64
	maxDet            int
	classes           string
	threads, batch    int
	backend, delegate string
	strict            bool
	library           string
	jsonOut           bool
	verbose           bool
	annotateDir       string
	images            []string
	profile           profileFlags
}

func parseDetectFlags(args []string, _ io.Writer) (*detectFlags, error) {
	f := &detectFlags{}
	fs := flag.NewFlagSet("detect", flag.ContinueOnError)
	fs.StringVar(&f.model, "model", "", "`path` of the .tflite model (required)")
	fs.StringVar(&f.labels, "labels", "", "class names, one per line (default: the model's metadata, else class ids)")
	fs.Float64Var(&f.conf, "conf", 0.25, "confidence threshold: keep scores above it")
	fs.Float64Var(&f.iou, "iou", 0.45, "NMS IoU threshold")
	fs.IntVar(&f.maxDet, "max-det", 300, "most detections per image")
	fs.StringVar(&f.classes, "classes", "", "keep only these classes: labels of the model or class ids, comma separated")
	fs.IntVar(&f.threads, "threads", 1, "inference and preprocessing threads")
	fs.IntVar(&f.batch, "batch", 1, "images per invoke (batched input tensor)")
	fs.StringVar(&f.backend, "backend", "auto", "inference engine: auto, go or native")
	fs.StringVar(&f.delegate, "delegate", "none", "native delegate: none, xnnpack or gpu")
	fs.BoolVar(&f.strict, "strict", false, "fail, naming why, when the --delegate (or --backend native) asked for cannot be used: no library, or the delegate does not load or apply; never fall back to the CPU or the go engine")
	fs.StringVar(&f.library, "library", "", "`path` of libtensorflowlite_c.so for the native engine (default: $EDGEFLEET_TFLITE_LIB, then the usual library paths)")
	fs.BoolVar(&f.jsonOut, "json", false, "print one JSON object per image")
	fs.StringVar(&f.annotateDir, "annotate", "", "write each image with its boxes drawn into `dir`")
	fs.BoolVar(&f.verbose, "v", false, "log engine choices and warnings to stderr")
	f.profile.register(fs, "over the images' invokes (mean per invoke; to stderr with --json)")
	// Flags may come after the images, as in "detect a.png --json".
	images, err := cli.Parse(fs, args)
	if err != nil {
		return nil, err
	}
	f.images = images
	switch {
	case f.model == "":
		return nil, cli.Usagef("--model is required")
	case len(f.images) == 0:
		return nil, cli.Usagef("no images given")
	case !(f.conf >= 0 && f.conf < 1):
		return nil, cli.Usagef("--conf %v: want 0 <= conf < 1", f.conf)
	case !(f.iou > 0 && f.iou <= 1):
		return nil, cli.Usagef("--iou %v: want 0 < iou <= 1", f.iou)
	case f.threads < 1 || f.threads > 256:
		return nil, cli.Usagef("--threads %d: want 1..256", f.threads)
	case f.batch < 1 || f.batch > 64:
		return nil, cli.Usagef("--batch %d: want 1..64", f.batch)
	case f.maxDet < 1:
		return nil, cli.Usagef("--max-det %d: want at least 1", f.maxDet)
	}
	if err := f.profile.check(); err != nil {
		return nil, err
	}
	if f.profile.on && f.backend == "native" {
		return nil, cli.Usagef("--profile times the go engine; --backend is native")
	}
	switch f.delegate {
	case "none", "xnnpack", "gpu":
	default:
		return nil, cli.Usagef("--delegate %q: want none, xnnpack or gpu", f.delegate)
	}
	if f.library != "" && f.backend == "go" {
		return nil, cli.Usagef("--library is for the native engine; --backend is go")
	}
	return f, nil
}

// classIDs resolves --classes (labels of the model, or class ids).
func (f *detectFlags) classIDs(labels []string) ([]int, error) {
	if f.classes == "" {
		return nil, nil
	}
	ids, bad := agent.ClassIDs(strings.Split(f.classes, ","), labels)
	if bad != "" {
		if len(labels) == 0 {
			return nil, fmt.Errorf("--classes: %q is not a class id (model %s names no labels)", bad, f.model)
		}
		return nil, fmt.Errorf("--classes: %q is not a label of model %s", bad, f.model)
	}
	return ids, nil
}

// detectLine is the --json output for one image.
type detectLine struct {
	Image      string             `json:"image"`
	Model      string             `json:"model"`
	Width      int                `json:"width"`
	Height     int                `json:"height"`
	Detections []models.Detection `json:"detections"`
	TimingsMS  struct {
		Preprocess  float64 `json:"preprocess"`
		Inference   float64 `json:"inference"`
		Postprocess float64 `json:"postprocess"`
	} `json:"timings_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runDetect(ctx context.Context, args []string) error {
	f, err := parseDetectFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	// Errors are the one line main prints; engine chatter only on -v.
	level := slog.LevelError + 1
	if f.verbose {
		level = slog.LevelInfo
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	return detect(ctx, f, os.Stdout, os.Stderr)
}

func detect(ctx context.Context, f *detectFlags, stdout, stderr io.Writer) error {
	// Missing images fail before the model loads.
	for _, p := range f.images {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("image %w", err)
		}
	}
	if f.labels != "" {
		if _, err := os.Stat(f.labels); err != nil {
			return fmt.Errorf("labels %w", err)
		}
	}
	modelBytes, err := os.ReadFile(f.model)
	if err != nil {
		return fmt.Errorf("model %w", err)
	}
	labels, _, err := meta.Labels(f.labels, modelBytes)
	if err != nil {
		return err
	}
	classes, err := f.classIDs(labels)
	if err != nil {
		return err
	}
	backend := f.backend
	if f.profile.on {
		backend = "go"
	}
	eng, err := engine.Open(ctx, backend, modelBytes, models.Options{Threads: f.threads, Delegate: f.delegate, Strict: f.strict, Library: f.library})
	if err != nil {
		return fmt.Errorf("model %s: %w", f.model, err)
	}
	defer eng.Close()
	var prof *tflite.Profiler
	if f.profile.on {
		if prof, err = profiled(eng); err != nil {
			return err
		}
	}
	det, err := yolo.NewDetector(eng, yolo.Options{
		Params:  yolo.Params{Conf: float32(f.conf), IoU: float32(f.iou), MaxDet: f.maxDet, Classes: classes},
		Labels:  labels,
		Batch:   f.batch,
		Workers: f.threads,
	})
	if err != nil {
		return fmt.Errorf("model %s: %w", f.model, err)
	}
	if f.conf == 0 {
		// Params treats 0 as "default"; the smallest positive threshold keeps everything.
		det, err = yolo.NewDetector(eng, yolo.Options{
			Params: yolo.Params{Conf: 1e-30, IoU: float32(f.iou), MaxDet: f.maxDet, Classes: classes},
			Labels: labels, Batch: f.batch, Workers: f.threads,
		})
		if err != nil {
			return fmt.Errorf("model %s: %w", f.model, err)
		}
	}
	if f.annotateDir != "" {
		if err := os.MkdirAll(f.annotateDir, 0o755); err != nil {
			return fmt.Errorf("annotate: %w", err)
		}
	}
	written := map[string]int{}
	warned := false
	enc := json.NewEncoder(stdout)
	for start := 0; start < len(f.images); start += f.batch {
		paths := f.images[start:min(start+f.batch, len(f.images))]
		imgs := make([]image.Image, len(paths))
		for i, p := range paths {
			if imgs[i], err = imageio.Load(p); err != nil {
				return err
			}
		}
		res, err := det.DetectResults(ctx, imgs)
		if err != nil {
			return fmt.Errorf("model %s: %w", f.model, err)
		}
		if err := det.BatchError(); err != nil && !warned {
			warned = true
			fmt.Fprintf(stderr, "edge-agent detect: warning: %s cannot run %d images per invoke, running one at a time (%v)\n", f.model, f.batch, err)
		}
		for i, r := range res {
			b := imgs[i].Bounds()
			if f.annotateDir != "" {
				if err := saveAnnotated(f.annotateDir, paths[i], imgs[i], r.Detections, written); err != nil {
					return err
				}
			}
			if f.jsonOut {
				l := detectLine{Image: paths[i], Model: f.model, Width: b.Dx(), Height: b.Dy(), Detections: r.Detections}
				if l.Detections == nil {
					l.Detections = []models.Detection{}
				}
				l.TimingsMS.Preprocess = ms(r.Timings.Preprocess)
				l.TimingsMS.Inference = ms(r.Timings.Inference)
				l.TimingsMS.Postprocess = ms(r.Timings.Postprocess)
				if err := enc.Encode(l); err != nil {
					return fmt.Errorf("write: %w", err)
				}
				continue
			}
			if _, err := fmt.Fprintln(stdout, textLine(paths[i], b, r)); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	}
	if prof == nil {
		return nil
	}
	w := stdout
	if f.jsonOut {
		w = stderr
	}
	return writeProfile(w, f.model, prof.Report(), f.profile.top)
}

func textLine(path string, b image.Rectangle, r yolo.Result) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %dx%d:", path, b.Dx(), b.Dy())
	if len(r.Detections) == 0 {
		sb.WriteString(" nothing found")
	}
	for i, d := range r.Detections {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, " %s %.2f [%.0f %.0f %.0f %.0f]", d.Label, d.Score, d.Box[0], d.Box[1], d.Box[2], d.Box[3])
	}
	t := r.Timings
	fmt.Fprintf(&sb, " (preprocess %.1f ms, inference %.1f ms, postprocess %.2f ms)", ms(t.Preprocess), ms(t.Inference), ms(t.Postprocess))
	return sb.String()
}

// saveAnnotated writes DIR/<image name>, adding -2, -3... when two images
// share a name. JPEG inputs stay JPEG; everything else becomes PNG.
func saveAnnotated(dir, path string, img image.Image, dets []models.Detection, written map[string]int) error {
	base := filepath.Base(path)
	ext := strings.ToLower(filepath.Ext(base))
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	if ext != ".jpg" && ext != ".jpeg" {
		ext = ".png"
	}
	written[stem+ext]++
	if n := written[stem+ext]; n > 1 {
		stem = fmt.Sprintf("%s-%d", stem, n)
	}
	if err := imageio.Save(filepath.Join(dir, stem+ext), annotate.Draw(img, dets)); err != nil {
		return fmt.Errorf("annotate %s: %w", path, err)
	}
	return nil
}
