package rest

import "time"

// Artifact kinds: the model routes serve KindModel, the firmware routes KindFirmware.
const (
	KindModel    = "model"
	KindFirmware = "firmware"
)

// Model is a stored model or agent bundle as the API shows it: the body of
// POST /api/v1/models (and /firmware) and of GET .../{name}/{version}.
type Model struct {
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
	KeyID     string    `json:"key_id"`
	Labels    int       `json:"labels"`
	Inputs    []Tensor  `json:"inputs,omitempty"`
	Outputs   []Tensor  `json:"outputs,omitempty"`
	OS        string    `json:"os,omitempty"`
	Arch      string    `json:"arch,omitempty"`
	// InUse lists the unfinished rollouts that send it.
	InUse []string `json:"in_use,omitempty"`
	// Manifest is the signed payload (canonical JSON) and Signature its signature.
	Manifest  []byte `json:"manifest,omitempty"`
	Signature []byte `json:"signature,omitempty"`
}

// Tensor is one input or output of a model, as its manifest lists it.
type Tensor struct {
	Name  string `json:"name"`
	Type  string `json:"type"` // e.g. "int8", "float32"
	Shape []int  `json:"shape"`
	// Scale and ZeroPoint are the per-tensor quantization, when quantized.
	Scale     float32 `json:"scale,omitempty"`
	ZeroPoint int64   `json:"zero_point,omitempty"`
}

// ModelList is the body of GET /api/v1/models.
type ModelList struct {
	Models []Model `json:"models"`
}

// FirmwareList is the body of GET /api/v1/firmware.
type FirmwareList struct {
	Firmware []Model `json:"firmware"`
}

// Upload is what a multipart POST /api/v1/models (or /firmware) sends
// before its file part: name and version always, labels for a model, os and
// arch for firmware.
type Upload struct {
	Name, Version string
	// Labels is a class names file (one per line), optional.
	Labels   []byte
	OS, Arch string
}

// Fields returns the multipart fields in the order the server reads them.
func (u Upload) Fields() [][2]string {
	f := [][2]string{{"name", u.Name}, {"version", u.Version}}
	if len(u.Labels) > 0 {
		f = append(f, [2]string{"labels", string(u.Labels)})
	}
	if u.OS != "" || u.Arch != "" {
		f = append(f, [2]string{"os", u.OS}, [2]string{"arch", u.Arch})
	}
	return f
}

// Deleted is the body of DELETE /api/v1/models/{name}/{version}.
type Deleted struct {
	Deleted string `json:"deleted"` // name@version
	SHA256  string `json:"sha256"`
}
