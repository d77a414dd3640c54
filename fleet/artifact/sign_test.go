package artifact

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"testing"

	"edgefleet/models/manifest"
	"edgefleet/models/modeltest"
)

func TestSigner(t *testing.T) {
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov8n_int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	ks := manifest.KeySet{}
	id := ks.Add(pub)
	st, err := Open(t.TempDir(), Options{Seal: Signer(priv, id)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	m, err := st.Put(ctx, bytes.NewReader(model), Meta{Kind: manifest.KindModel, Name: "yolov8n", Version: "2", Labels: []string{"person", "car"}})
	if err != nil {
		t.Fatal(err)
	}
	man, err := manifest.Verify(ks, m.Manifest, m.Sig, m.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	if err := man.Check(m.SHA256, m.Size); err != nil || man.Name != "yolov8n" || man.Labels[1] != "car" || len(man.Outputs) == 0 {
		t.Fatalf("manifest %+v: %v", man, err)
	}
	// Not a model: refused before anything is recorded.
	if _, err := st.Put(ctx, bytes.NewReader([]byte("#!/bin/sh\n")), Meta{Kind: manifest.KindModel, Name: "x", Version: "1"}); err == nil {
		t.Fatal("a shell script was accepted as a model")
	}
	if _, err := st.Find(ctx, manifest.KindModel, "x", "1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused upload recorded: %v", err)
	}
	fw, err := st.Put(ctx, bytes.NewReader([]byte("ELF...")), Meta{Kind: manifest.KindFirmware, Name: "edge-agent", Version: "0.2.0", OS: "linux", Arch: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if man, err := manifest.Verify(ks, fw.Manifest, fw.Sig, fw.KeyID); err != nil || man.Arch != "arm64" {
		t.Fatalf("firmware manifest %+v: %v", man, err)
	}
}
