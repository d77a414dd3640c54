// Package yolotest holds what tests of YOLO pipelines share: the reference
// files of the shared test data (detections made by real TFLite runtimes) and
// Agree, the rule by which two runs count as finding the same objects.
package yolotest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"edgefleet/models"
)

// The agreement rule of issue 2: as close as two real TFLite builds come to
// each other on the reference pairs.
const (
	StrongScore = 0.5 // detections scoring at least this must be explained
	MatchIoU    = 0.7 // a strong reference detection needs a same-class box this close
	ScoreDelta  = 0.2 // ... with a score this close
	ExtraIoU    = 0.5 // a strong extra detection needs a same-class reference box this close
)

// Agree reports whether got finds the same objects as ref: every reference
// detection scoring >= 0.5 is matched by a detection of the same class with
// box IoU >= 0.7 and score within 0.2, and every detection scoring >= 0.5 has
// a same-class reference detection overlapping it at IoU >= 0.5. The error
// lists every violation.
func Agree(ref, got []models.Detection) error {
	var errs []error
	for _, r := range ref {
		if r.Score < StrongScore {
			continue
		}
		best, bestIoU := -1, float32(0)
		for i, g := range got {
			if g.ClassID != r.ClassID || abs(g.Score-r.Score) > ScoreDelta {
				continue
			}
			if iou := IoU(r.Box, g.Box); iou >= MatchIoU && iou > bestIoU {
				best, bestIoU = i, iou
			}
		}
		if best < 0 {
			errs = append(errs, fmt.Errorf("reference %s unmatched (closest same-class: %s)", Format(r), closest(r, got)))
		}
	}
	for _, g := range got {
		if g.Score < StrongScore {
			continue
		}
		ok := false
		for _, r := range ref {
			if r.ClassID == g.ClassID && IoU(r.Box, g.Box) >= ExtraIoU {
				ok = true
				break
			}
		}
		if !ok {
			errs = append(errs, fmt.Errorf("extra %s has no same-class reference at IoU >= %.1f", Format(g), ExtraIoU))
		}
	}
	return errors.Join(errs...)
}

func closest(r models.Detection, got []models.Detection) string {
	s, best := "none", float32(-1)
	for _, g := range got {
		if g.ClassID != r.ClassID {
			continue
		}
		if iou := IoU(r.Box, g.Box); iou > best {
			best = iou
			s = fmt.Sprintf("%s IoU %.3f", Format(g), iou)
		}
	}
	return s
}

// Format writes a detection in one short line.
func Format(d models.Detection) string {
	name := d.Label
	if name == "" {
		name = fmt.Sprintf("class %d", d.ClassID)
	}
	return fmt.Sprintf("%s(%d) %.3f [%.1f %.1f %.1f %.1f]", name, d.ClassID, d.Score, d.Box[0], d.Box[1], d.Box[2], d.Box[3])
}

// IoU is the intersection over union of two x1,y1,x2,y2 boxes.
func IoU(a, b [4]float32) float32 { return models.IoU(a, b) }

func abs(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// Reference is one reference/<model>__<image>.json file of the shared test data.
type Reference struct {
	Model             string     `json:"model"`
	ModelSHA256       string     `json:"model_sha256"`
	Image             string     `json:"image"`
	ImageSHA256       string     `json:"image_sha256"`
	ImageSizeWH       [2]int     `json:"image_size_wh"`
	InputShape        []int      `json:"input_shape"`
	InputDType        string     `json:"input_dtype"`
	InputLayout       string     `json:"input_layout"`
	InputQuantScaleZP [2]float64 `json:"input_quant_scale_zp"`
	Letterbox         struct {
		Gain     float64 `json:"gain"`
		ResizedW int     `json:"resized_w"`
		ResizedH int     `json:"resized_h"`
		PadLeft  int     `json:"pad_left"`
		PadTop   int     `json:"pad_top"`
		DstW     int     `json:"dst_w"`
		DstH     int     `json:"dst_h"`
		PadValue int     `json:"pad_value"`
	} `json:"letterbox"`
	OutputShape        []int      `json:"output_shape"`
	OutputDType        string     `json:"output_dtype"`
	OutputQuantScaleZP [2]float64 `json:"output_quant_scale_zp"`
	OutputFormat       string     `json:"output_format"`
	BoxCoords          string     `json:"box_coords"`
	ConfThreshold      float64    `json:"conf_threshold"`
	IoUThreshold       float64    `json:"iou_threshold"`
	Detections         []struct {
		Class int        `json:"class"`
		Name  string     `json:"name"`
		Score float32    `json:"score"`
		Box   [4]float32 `json:"box"`
	} `json:"detections"`
	InputTensorSHA256 string  `json:"input_tensor_sha256"`
	RawOutputSHA256   string  `json:"raw_output_sha256"`
	InvokeMS          float64 `json:"invoke_ms"`
	Threads           int     `json:"threads"`
	Runtime           string  `json:"runtime"`

	// Path is the file it was read from.
	Path string `json:"-"`
}

// Pair is the file stem, <model stem>__<image stem>.
func (r *Reference) Pair() string {
	return strings.TrimSuffix(filepath.Base(r.Path), ".json")
}

// Dets returns the reference detections as models.Detection values.
func (r *Reference) Dets() []models.Detection {
	out := make([]models.Detection, len(r.Detections))
	for i, d := range r.Detections {
		out[i] = models.Detection{ClassID: d.Class, Label: d.Name, Score: d.Score, Box: d.Box}
	}
	return out
}

// ReadReference reads one reference JSON file.
func ReadReference(path string) (*Reference, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("yolotest: %w", err)
	}
	r := &Reference{Path: path}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("yolotest: read %s: %w", path, err)
	}
	return r, nil
}

// DType maps the dtype names of the reference files.
func DType(name string) (models.DType, error) {
	switch name {
	case "float32":
		return models.Float32, nil
	case "int8":
		return models.Int8, nil
	case "uint8":
		return models.UInt8, nil
	}
	return 0, fmt.Errorf("yolotest: unknown dtype %q", name)
}

// TensorInfo describes a tensor of a reference file as an engine would.
func TensorInfo(name, dtype string, shape []int, scaleZP [2]float64) (models.TensorInfo, error) {
	t, err := DType(dtype)
	if err != nil {
		return models.TensorInfo{}, err
	}
	ti := models.TensorInfo{Name: name, Type: t, Shape: append([]int(nil), shape...)}
	if t != models.Float32 {
		ti.Quant = &models.Quant{Scale: []float32{float32(scaleZP[0])}, ZeroPoint: []int64{int64(scaleZP[1])}}
	}
	return ti, nil
}
