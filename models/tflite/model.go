package tflite

import "edgefleet/models/tfmodel"

// The model file format lives in models/tfmodel, which programs that only
// inspect models (manifest signing, fleetctl) use without linking the
// interpreter. These aliases keep the names the interpreter's callers use.
type (
	// Model is a parsed .tflite file (tfmodel.Model).
	Model = tfmodel.Model
	// OperatorCode names an operator kind used by the model.
	OperatorCode = tfmodel.OperatorCode
	// Metadata is a named buffer of model metadata.
	Metadata = tfmodel.Metadata
	// Subgraph is one computation graph of the model; the first is the main one.
	Subgraph = tfmodel.Subgraph
	// Tensor is a tensor declaration.
	Tensor = tfmodel.Tensor
	// Operator is one node of a subgraph.
	Operator = tfmodel.Operator
	// BuiltinOp is TFLite's BuiltinOperator enum.
	BuiltinOp = tfmodel.BuiltinOp
)

// ErrFormat is returned (wrapped) for files that are not valid TFLite models.
var ErrFormat = tfmodel.ErrFormat

// Parse reads a TFLite flatbuffer (tfmodel.Parse): truncated, corrupt or
// hostile files give an error wrapping ErrFormat, never a panic.
func Parse(data []byte) (*Model, error) { return tfmodel.Parse(data) }
