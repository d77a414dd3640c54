package manifest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgefleet/models/modeltest"
)

func testModel() *Manifest {
	return &Manifest{Kind: KindModel, Name: "yolo", Version: "1.2.0", SHA256: strings.Repeat("ab", 32), Size: 1234,
		CreatedAt: time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC),
		Inputs:    []Tensor{{Name: "images", Type: "int8", Shape: []int{1, 320, 320, 3}, Scale: 0.003921569, ZeroPoint: -128}},
		Outputs:   []Tensor{{Name: "out", Type: "int8", Shape: []int{1, 84, 2100}}},
		Labels:    []string{"person", "<car>&"}}
}

func mustKey(t testing.TB) (ed25519.PrivateKey, string) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv, KeyID(pub)
}

func TestSignVerify(t *testing.T) {
	priv, id := mustKey(t)
	priv2, id2 := mustKey(t)
	ks := KeySet{}
	ks.Add(priv.Public().(ed25519.PublicKey))
	payload, sig, err := Sign(priv, id, testModel())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(payload, []byte(`\u003c`)) || bytes.HasSuffix(payload, []byte("\n")) {
		t.Fatalf("payload not canonical: %s", payload)
	}
	m, err := Verify(ks, payload, sig, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "yolo" || m.Inputs[0].Scale != 0.003921569 || m.Labels[1] != "<car>&" {
		t.Fatalf("round trip: %+v", m)
	}
	otherPayload, otherSig, _ := Sign(priv2, id2, testModel())
	flipped := bytes.Clone(payload)
	flipped[10] ^= 1
	badSig := bytes.Clone(sig)
	badSig[0] ^= 1
	// A payload whose signature checks but which is not canonical.
	spaced := append([]byte(" "), payload...)
	dup := append(bytes.TrimSuffix(bytes.Clone(payload), []byte("}")), []byte(`,"name":"evil"}`)...)
	tests := []struct {
		name           string
		payload, sig   []byte
		keyID          string
		want           error
		wantSubstrings string
	}{
		{"no payload", nil, sig, id, ErrUnsigned, "no manifest"},
		{"no signature", payload, nil, id, ErrUnsigned, "no signature"},
		{"no key id", payload, sig, "", ErrUnsigned, "no key id"},
		{"unknown key", otherPayload, otherSig, id2, ErrUnknownKey, id2},
		{"short signature", payload, sig[:10], id, ErrBadSignature, "10 bytes"},
		{"tampered payload", flipped, sig, id, ErrBadSignature, "does not sign"},
		{"tampered signature", payload, badSig, id, ErrBadSignature, "does not sign"},
		{"other key's signature", payload, otherSig, id, ErrBadSignature, "does not sign"},
		{"not canonical", spaced, ed25519.Sign(priv, spaced), id, ErrMalformed, "canonical"},
		{"duplicate key", dup, ed25519.Sign(priv, dup), id, ErrMalformed, "canonical"},
		{"not json", []byte("hello"), ed25519.Sign(priv, []byte("hello")), id, ErrMalformed, "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Verify(ks, tc.payload, tc.sig, tc.keyID)
			if !errors.Is(err, tc.want) || m != nil {
				t.Fatalf("Verify = %v, %v; want %v", m, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantSubstrings) {
				t.Fatalf("error %q lacks %q", err, tc.wantSubstrings)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldPriv, oldID := mustKey(t)
	newPriv, newID := mustKey(t)
	ks := KeySet{}
	ks.Add(oldPriv.Public().(ed25519.PublicKey))
	ks.Add(newPriv.Public().(ed25519.PublicKey))
	for _, k := range []struct {
		priv ed25519.PrivateKey
		id   string
	}{{oldPriv, oldID}, {newPriv, newID}} {
		p, s, err := Sign(k.priv, k.id, testModel())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(ks, p, s, k.id); err != nil {
			t.Fatalf("key %s: %v", k.id, err)
		}
	}
	delete(ks, oldID)
	p, s, _ := Sign(oldPriv, oldID, testModel())
	if _, err := Verify(ks, p, s, oldID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("retired key: %v", err)
	}
}

func TestValidate(t *testing.T) {
	fw := func(f func(*Manifest)) *Manifest {
		m := &Manifest{Kind: KindFirmware, Name: "edge-agent", Version: "0.3.0+abc", SHA256: strings.Repeat("0", 64), Size: 1,
			CreatedAt: time.Unix(1, 0), OS: "linux", Arch: "arm64", MinConfigSchema: 1}
		f(m)
		return m
	}
	model := func(f func(*Manifest)) *Manifest { m := testModel(); f(m); return m }
	tests := []struct {
		name string
		m    *Manifest
		want string // "" = valid
	}{
		{"model", model(func(*Manifest) {}), ""},
		{"firmware", fw(func(*Manifest) {}), ""},
		{"kind", model(func(m *Manifest) { m.Kind = "docker" }), "kind"},
		{"name empty", model(func(m *Manifest) { m.Name = "" }), "name: empty"},
		{"name slash", model(func(m *Manifest) { m.Name = "../x" }), "name:"},
		{"version", model(func(m *Manifest) { m.Version = "1 0" }), "version:"},
		{"sha upper", model(func(m *Manifest) { m.SHA256 = strings.Repeat("AB", 32) }), "sha256:"},
		{"sha short", model(func(m *Manifest) { m.SHA256 = "ab" }), "sha256:"},
		{"size", model(func(m *Manifest) { m.Size = 0 }), "size"},
		{"time", model(func(m *Manifest) { m.CreatedAt = time.Time{} }), "created_at"},
		{"no outputs", model(func(m *Manifest) { m.Outputs = nil }), "inputs and outputs"},
		{"no type", model(func(m *Manifest) { m.Outputs[0].Type = "" }), "type"},
		{"neg dim", model(func(m *Manifest) { m.Outputs[0].Shape = []int{-1} }), "negative"},
		{"model with arch", model(func(m *Manifest) { m.Arch = "arm64" }), "firmware only"},
		{"firmware no arch", fw(func(m *Manifest) { m.Arch = "" }), "os and arch"},
		{"firmware tensors", fw(func(m *Manifest) { m.Inputs = testModel().Inputs }), "models only"},
		{"firmware schema", fw(func(m *Manifest) { m.MinConfigSchema = -1 }), "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				b, err := Encode(tc.m)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Parse(b); err != nil {
					t.Fatalf("Parse(Encode) = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
			if _, _, err := Sign(ed25519.NewKeyFromSeed(make([]byte, 32)), "k", tc.m); err == nil {
				t.Fatal("Sign accepted an invalid manifest")
			}
		})
	}
}

func TestCheck(t *testing.T) {
	m := testModel()
	if err := m.Check(m.SHA256, m.Size); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(m.SHA256, m.Size-1); !errors.Is(err, ErrMismatch) {
		t.Fatalf("truncated: %v", err)
	}
	if err := m.Check(strings.Repeat("cd", 32), m.Size); !errors.Is(err, ErrMismatch) {
		t.Fatalf("corrupted: %v", err)
	}
}

func TestForModel(t *testing.T) {
	for _, p := range modeltest.Glob(t, "models/*.tflite") {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ForModel(data, "m", "1", []string{"person"}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if m.Size != int64(len(data)) || len(m.Inputs) != 1 || len(m.Outputs) == 0 || len(m.Inputs[0].Shape) != 4 {
				t.Fatalf("manifest %+v", m)
			}
			if filepath.Base(p) == "yolo11n_full_integer_quant.tflite" {
				in, out := m.Inputs[0], m.Outputs[0]
				if in.Name != "serving_default_images:0" || in.Type != "int8" || in.ZeroPoint != -128 ||
					out.Name != "PartitionedCall:0" || !equalInts(out.Shape, []int{1, 84, 8400}) ||
					m.SHA256 != "3c6785f4e7266cf6f70c35a2f43b483169bc23be3a78002490e0d0b56e62da17" {
					t.Fatalf("yolo11n manifest %+v", m)
				}
			}
		})
	}
	if _, err := ForModel([]byte("not a model"), "m", "1", nil, time.Now()); err == nil {
		t.Fatal("ForModel accepted garbage")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	id, err := GenerateKey(dir, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "fleet.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", fi.Mode(), err)
	}
	if _, err := GenerateKey(dir, "fleet"); err == nil {
		t.Fatal("GenerateKey overwrote a key")
	}
	priv, id2, err := LoadPrivateKey(filepath.Join(dir, "fleet.key"))
	if err != nil || id2 != id {
		t.Fatalf("LoadPrivateKey: %v id %s want %s", err, id2, id)
	}
	id3, err := GenerateKey(dir, "fleet-2027")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := ks.IDs(); len(got) != 2 || ks[id] == nil || ks[id3] == nil {
		t.Fatalf("key set %v", got)
	}
	p, s, err := Sign(priv, id, testModel())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ks, p, s, id); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(filepath.Join(dir, "fleet.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadPrivateKey(filepath.Join(dir, "fleet.key")); err == nil || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	if _, err := LoadKeySet(filepath.Join(dir, "fleet.key")); err == nil {
		t.Fatal("LoadKeySet pinned a private key file")
	}
	if _, err := LoadKeySet(t.TempDir()); err == nil {
		t.Fatal("LoadKeySet of an empty dir succeeded")
	}
	if _, err := ParsePublicKey([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")); err == nil {
		t.Fatal("ParsePublicKey accepted garbage")
	}
	if _, err := GenerateKey(dir, "../evil"); err == nil {
		t.Fatal("GenerateKey accepted a path as name")
	}
}

func FuzzParse(f *testing.F) {
	b, _ := Encode(testModel())
	f.Add(b)
	f.Add([]byte(`{"kind":"firmware"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := Parse(payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := Encode(m)
		if err != nil || !bytes.Equal(again, payload) {
			t.Fatalf("accepted %q but re-encodes to %q, %v", payload, again, err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	ks := KeySet{}
	id := ks.Add(priv.Public().(ed25519.PublicKey))
	p, s, _ := Sign(priv, id, testModel())
	f.Add(p, s, id)
	f.Add(p, s[:3], id)
	f.Add([]byte{}, []byte{}, "")
	f.Fuzz(func(t *testing.T, payload, sig []byte, keyID string) {
		m, err := Verify(ks, payload, sig, keyID)
		if err == nil && (m == nil || !ed25519.Verify(ks[keyID], payload, sig)) {
			t.Fatal("accepted without a valid signature")
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	pub, _ := EncodePublicKey(ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey))
	f.Add(pub)
	f.Fuzz(func(t *testing.T, b []byte) {
		ParsePublicKey(b)
		ParsePrivateKey(b)
	})
}
