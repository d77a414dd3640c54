package native

// Report says what the native engine can use on this box, for
// `edge-agent info` and telemetry.
type Report struct {
	// Built is false when this binary has no native engine (ErrNotBuilt).
	Built bool `json:"built"`
	// Library is the path of the TFLite C library that loaded, if any.
	Library string `json:"library,omitempty"`
	// Version is TfLiteVersion() of that library.
	Version string `json:"version,omitempty"`
	// Error says why no library is usable.
	Error     string           `json:"error,omitempty"`
	Delegates []DelegateReport `json:"delegates,omitempty"`
}

// DelegateReport says whether one delegate can be created here. It does not
// say that a given model will run on it: a delegate may still reject a model
// when it is applied.
type DelegateReport struct {
	Name      string `json:"name"`
	Available bool   `json:"available"`
	Library   string `json:"library,omitempty"`
	Error     string `json:"error,omitempty"`
}
