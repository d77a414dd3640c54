package manifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Key files are PEM: a private key is a PKCS #8 "PRIVATE KEY" block in a file
// of mode 0600 (LoadPrivateKey refuses one that group or others can read, as
// ssh does); a public key is a PKIX "PUBLIC KEY" block. Both are what
// `openssl genpkey -algorithm ed25519` writes. A key's id is derived from the
// public key (KeyID), so a KeySet needs nothing but public key files.

// KeyID returns the id of a public key: the first 8 bytes of its sha256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// KeySet holds pinned public keys by id. Several keys allow rotation: agents
// pin the old and the new key until every artifact is signed with the new one.
type KeySet map[string]ed25519.PublicKey

// Add pins pub and returns its id.
func (ks KeySet) Add(pub ed25519.PublicKey) string {
	id := KeyID(pub)
	ks[id] = pub
	return id
}

// IDs returns the pinned key ids, sorted.
func (ks KeySet) IDs() []string {
	ids := make([]string, 0, len(ks))
	for id := range ks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// GenerateKey creates a key pair as dir/name.key (0600) and dir/name.pub
// (0644), refusing to overwrite either, and returns the key id.
func GenerateKey(dir, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", fmt.Errorf("manifest: generate key: name: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("manifest: generate key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("manifest: generate key: %w", err)
	}
	pubPEM, err := EncodePublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("manifest: generate key: %w", err)
	}
	privPath, pubPath := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if _, err := os.Stat(pubPath); err == nil {
		return "", fmt.Errorf("manifest: generate key: %s already exists", pubPath)
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return "", fmt.Errorf("manifest: generate key: %w", err)
	}
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		os.Remove(privPath)
		return "", fmt.Errorf("manifest: generate key: %w", err)
	}
	return KeyID(pub), nil
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// EncodePublicKey returns the PEM encoding of pub.
func EncodePublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey reads a PEM "PUBLIC KEY" block holding an ed25519 key.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("manifest: public key: no PEM PUBLIC KEY block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("manifest: public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("manifest: public key: %T is not ed25519", k)
	}
	return pub, nil
}

// ParsePrivateKey reads a PEM "PRIVATE KEY" block holding an ed25519 key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("manifest: private key: no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("manifest: private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("manifest: private key: %T is not ed25519", k)
	}
	return priv, nil
}

// LoadPrivateKey reads a private key file and returns the key and its id. It
// refuses a file that group or others may read.
func LoadPrivateKey(path string) (ed25519.PrivateKey, string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("manifest: load private key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, "", fmt.Errorf("manifest: load private key: %s has mode %04o; want 0600 (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("manifest: load private key: %w", err)
	}
	priv, err := ParsePrivateKey(b)
	if err != nil {
		return nil, "", fmt.Errorf("%w (%s)", err, path)
	}
	return priv, KeyID(priv.Public().(ed25519.PublicKey)), nil
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: load public key: %w", err)
	}
	pub, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return pub, nil
}

// LoadKeySet pins the public keys in the given files; a directory stands for
// every *.pub file in it.
func LoadKeySet(paths ...string) (KeySet, error) {
	ks := KeySet{}
	for _, p := range paths {
		files := []string{p}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			if files, err = filepath.Glob(filepath.Join(p, "*.pub")); err != nil {
				return nil, fmt.Errorf("manifest: load key set: %w", err)
			}
		}
		for _, f := range files {
			if !strings.HasSuffix(f, ".pub") && strings.HasSuffix(f, ".key") {
				return nil, fmt.Errorf("manifest: load key set: %s looks like a private key; pin the .pub file", f)
			}
			pub, err := LoadPublicKey(f)
			if err != nil {
				return nil, err
			}
			ks.Add(pub)
		}
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("manifest: load key set: no public keys in %v", paths)
	}
	return ks, nil
}
