//go:build !linux || !(amd64 || arm64) || omit_native

package native

import (
	"context"
	"errors"
	"testing"

	"edgefleet/models"
)

func TestStub(t *testing.T) {
	if Built {
		t.Fatal("stub build says Built")
	}
	_, err := Open(context.Background(), []byte("\x18\x00\x00\x00TFL3"), models.Options{})
	if !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("err = %v, want ErrNotBuilt", err)
	}
	if r := Probe(models.Options{}); r.Built || r.Error == "" {
		t.Errorf("Probe = %+v", r)
	}
}
