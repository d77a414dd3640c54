package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/firmware/firmwaretest"
	"edgefleet/models/manifest"
)

// selfBinary is this test binary: a real Go ELF executable for this machine.
func selfBinary(t testing.TB) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type signer struct {
	priv ed25519.PrivateKey
	id   string
	keys manifest.KeySet
}

func newSigner(t testing.TB) signer {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ks := manifest.KeySet{}
	return signer{priv: priv, id: ks.Add(pub), keys: ks}
}

func firmwareManifest(bin []byte, arch string) *manifest.Manifest {
	sum := sha256.Sum256(bin)
	return &manifest.Manifest{Kind: manifest.KindFirmware, Name: "edge-agent", Version: "1.2.3",
		SHA256: hex.EncodeToString(sum[:]), Size: int64(len(bin)), CreatedAt: time.Unix(1764000000, 0),
		OS: "linux", Arch: arch, MinConfigSchema: 1}
}

func (s signer) header(t testing.TB, m *manifest.Manifest) bundle.Header {
	t.Helper()
	p, sig, err := manifest.Sign(s.priv, s.id, m)
	if err != nil {
		t.Fatal(err)
	}
	return bundle.Header{Manifest: p, Sig: sig, KeyID: s.id}
}

// withMachine returns a copy of an ELF binary claiming another machine.
func withMachine(bin []byte, m elf.Machine) []byte {
	b := bytes.Clone(bin)
	binary.LittleEndian.PutUint16(b[18:], uint16(m))
	return b
}

func otherArch() (string, elf.Machine) {
	if runtime.GOARCH == "arm64" {
		return "amd64", elf.EM_X86_64
	}
	return "arm64", elf.EM_AARCH64
}

func TestCheck(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux ELF binaries only")
	}
	s, stranger := newSigner(t), newSigner(t)
	bin := []byte("\x7fELF placeholder")
	good := s.header(t, firmwareManifest(bin, runtime.GOARCH))
	badSig := good
	badSig.Sig = bytes.Clone(good.Sig)
	badSig.Sig[5] ^= 1
	tampered := good
	tampered.Manifest = bytes.Replace(good.Manifest, []byte(`"1.2.3"`), []byte(`"1.2.4"`), 1)
	other, _ := otherArch()
	model := firmwareManifest(bin, runtime.GOARCH)
	model.Kind, model.OS, model.Arch, model.MinConfigSchema = manifest.KindModel, "", "", 0
	model.Inputs = []manifest.Tensor{{Name: "in", Type: "int8", Shape: []int{1}}}
	model.Outputs = model.Inputs
	newSchema := firmwareManifest(bin, runtime.GOARCH)
	newSchema.MinConfigSchema = 3

	for _, tc := range []struct {
		name   string
		h      bundle.Header
		target bundle.Target
		want   error
	}{
		{"good", good, bundle.Target{}, nil},
		{"good with schema", good, bundle.Target{ConfigSchema: 1}, nil},
		{"bad signature", badSig, bundle.Target{}, manifest.ErrBadSignature},
		{"tampered manifest", tampered, bundle.Target{}, manifest.ErrBadSignature},
		{"unknown key", stranger.header(t, firmwareManifest(bin, runtime.GOARCH)), bundle.Target{}, manifest.ErrUnknownKey},
		{"unsigned", bundle.Header{Manifest: good.Manifest}, bundle.Target{}, manifest.ErrUnsigned},
		{"wrong arch", s.header(t, firmwareManifest(bin, other)), bundle.Target{}, bundle.ErrPlatform},
		{"wrong os", good, bundle.Target{OS: "darwin"}, bundle.ErrPlatform},
		{"model", s.header(t, model), bundle.Target{}, bundle.ErrKind},
		{"schema too new", s.header(t, newSchema), bundle.Target{ConfigSchema: 2}, bundle.ErrConfigSchema},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := bundle.Check(s.keys, tc.h, tc.target)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check: %v, want %v", err, tc.want)
			}
			if tc.want == nil && m.Version != "1.2.3" {
				t.Errorf("version %q", m.Version)
			}
		})
	}
}

func TestCopy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux ELF binaries only")
	}
	bin := selfBinary(t)
	m := firmwareManifest(bin, runtime.GOARCH)
	_, otherMachine := otherArch()
	flipped := bytes.Clone(bin)
	flipped[len(bin)/2] ^= 0xff

	for _, tc := range []struct {
		name    string
		payload []byte
		want    error
		wrote   bool // whether anything may reach w
	}{
		{"good", bin, nil, true},
		{"truncated", bin[:len(bin)-1000], bundle.ErrTruncated, true},
		{"truncated in header", bin[:10], bundle.ErrTruncated, false},
		{"empty", nil, bundle.ErrTruncated, false},
		{"too long", append(bytes.Clone(bin), 0), bundle.ErrTooLong, true},
		{"corrupted", flipped, manifest.ErrMismatch, true},
		{"wrong ELF machine", withMachine(bin, otherMachine), bundle.ErrPlatform, false},
		{"not ELF", append([]byte("#!/bin/sh\necho hi\n"), bin[18:]...), bundle.ErrPlatform, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := bundle.Copy(&out, bytes.NewReader(tc.payload), m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Copy: %v, want %v", err, tc.want)
			}
			if !tc.wrote && out.Len() > 0 {
				t.Errorf("wrote %d bytes before refusing", out.Len())
			}
			if tc.want == nil && !bytes.Equal(out.Bytes(), bin) {
				t.Errorf("copied %d bytes, not the binary", out.Len())
			}
		})
	}
}

func TestWriteReadHeader(t *testing.T) {
	s := newSigner(t)
	bin := selfBinary(t)
	h := s.header(t, firmwareManifest(bin, runtime.GOARCH))
	var buf bytes.Buffer
	if err := bundle.Write(&buf, h, bytes.NewReader(bin)); err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(buf.Bytes())
	got, err := bundle.ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Manifest, h.Manifest) || !bytes.Equal(got.Sig, h.Sig) || got.KeyID != h.KeyID {
		t.Fatalf("header round trip: %+v", got)
	}
	m, err := bundle.Check(s.keys, got, bundle.Target{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Copy(io.Discard, r, m); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("EFBNDL99"), buf.Bytes()[8:]...)},
		{"cut in manifest", buf.Bytes()[:20]},
		{"zero manifest", []byte(bundle.Magic + "\x00\x00\x00\x00")},
		{"huge manifest", []byte(bundle.Magic + "\x7f\x00\x00\x00")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := bundle.ReadHeader(bytes.NewReader(tc.data)); !errors.Is(err, bundle.ErrFormat) {
				t.Fatalf("ReadHeader: %v, want ErrFormat", err)
			}
		})
	}
}

func FuzzReadHeader(f *testing.F) {
	s := newSigner(f)
	bin := []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00rest")
	var buf bytes.Buffer
	if err := bundle.Write(&buf, s.header(f, firmwareManifest(bin, "amd64")), bytes.NewReader(bin)); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(bundle.Magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := bundle.ReadHeader(r)
		if err != nil {
			return
		}
		m, err := bundle.Check(s.keys, h, bundle.Target{OS: "linux", Arch: "amd64"})
		if err != nil {
			return
		}
		_ = bundle.Copy(io.Discard, r, m)
	})
}

func TestInspect(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux ELF binaries only")
	}
	self := selfBinary(t)
	info, err := bundle.Inspect(bytes.NewReader(self))
	if err != nil {
		t.Fatal(err)
	}
	if info.Arch != runtime.GOARCH || info.OS != "linux" {
		t.Errorf("self: %+v", info)
	}
	if _, err := bundle.Inspect(bytes.NewReader(withMachine(self, elf.EM_PPC64))); !errors.Is(err, bundle.ErrPlatform) {
		t.Errorf("ELF header and build info disagree: %v, want ErrPlatform", err)
	}

	// A real cross build, static, with a stamped version.
	other, _ := otherArch()
	exe := firmwaretest.BuildFor(t, t.TempDir(), "7.0.1-rc1", firmwaretest.Good, other)
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	m, err := bundle.ForBinary(f, fi.Size(), "edge-agent", "", 2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m.Arch != other || m.OS != "linux" || m.Version != "7.0.1-rc1" || m.MinConfigSchema != 2 || m.Size != fi.Size() {
		t.Errorf("manifest %+v", m)
	}
	info, _ = bundle.Inspect(f)
	if !info.Static {
		t.Errorf("CGO_ENABLED=0 build not static: %+v", info)
	}
	// The declared arch must be the binary's: a manifest for this machine
	// over the foreign binary is refused before anything is written.
	m.Arch = runtime.GOARCH
	var out bytes.Buffer
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := bundle.Copy(&out, f, m); !errors.Is(err, bundle.ErrPlatform) || out.Len() != 0 {
		t.Errorf("foreign binary under a native manifest: %v, %d bytes written", err, out.Len())
	}
}

func FuzzInspect(f *testing.F) {
	self := selfBinary(f)
	f.Add(self[:4096])
	f.Add(withMachine(self[:64], elf.EM_AARCH64))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = bundle.Inspect(bytes.NewReader(data))
		for _, arch := range []string{"amd64", "arm64", "arm"} {
			_ = bundle.CheckELF(data, "linux", arch)
		}
	})
}
