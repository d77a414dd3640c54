package agent

import (
	"strconv"
	"strings"

	"edgefleet/models"
)

// Filter decides which detections of a camera count. The zero Filter keeps
// everything.
type Filter struct {
	// Region is a polygon in normalized frame coordinates (0..1 of width and
	// height); a detection counts when its box centre is inside. Fewer than
	// three points means the whole frame.
	Region [][2]float64
	// Classes, when not empty, keeps only detections with these labels.
	Classes map[string]bool
	// MinScore drops detections scoring below it.
	MinScore float32
}

// Keep reports whether d, found in a frame of w×h pixels, counts.
func (f *Filter) Keep(d models.Detection, w, h int) bool {
	if d.Score < f.MinScore {
		return false
	}
	if len(f.Classes) > 0 && !f.Classes[d.Label] {
		return false
	}
	if len(f.Region) < 3 || w <= 0 || h <= 0 {
		return true
	}
	cx := float64(d.Box[0]+d.Box[2]) / 2 / float64(w)
	cy := float64(d.Box[1]+d.Box[3]) / 2 / float64(h)
	return inPolygon(f.Region, cx, cy)
}

// inPolygon is the even-odd ray casting test.
func inPolygon(poly [][2]float64, x, y float64) bool {
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		xi, yi := poly[i][0], poly[i][1]
		xj, yj := poly[j][0], poly[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}

// ClassIDs resolves class names as a config or flag gives them (a label of
// the model, or a class id) to class ids. bad is the first name that is
// neither a label of labels nor a class id the model has (any non-negative
// id when labels is empty, since the model's class count is then unknown);
// ids is nil then.
func ClassIDs(names, labels []string) (ids []int, bad string) {
	index := make(map[string]int, len(labels))
	for i, l := range labels {
		if _, dup := index[l]; l != "" && !dup {
			index[l] = i
		}
	}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if id, ok := index[n]; ok {
			ids = append(ids, id)
			continue
		}
		id, err := strconv.Atoi(n)
		if err != nil || id < 0 || len(labels) > 0 && id >= len(labels) {
			return nil, n
		}
		ids = append(ids, id)
	}
	return ids, ""
}

// ClassLabel is the label the detector gives class id: its name in labels,
// else the id itself.
func ClassLabel(labels []string, id int) string {
	if id >= 0 && id < len(labels) && labels[id] != "" {
		return labels[id]
	}
	return strconv.Itoa(id)
}
