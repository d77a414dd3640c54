package boltschema

import (
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestCheck(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check := func(want string) error {
		return db.Update(func(tx *bolt.Tx) error { return Check(tx, []byte("meta"), []byte("version"), want) })
	}
	if err := check("1"); err != nil {
		t.Fatalf("new file: %v", err)
	}
	if err := check("1"); err != nil {
		t.Fatalf("same version: %v", err)
	}
	err = check("2")
	if err == nil || !strings.Contains(err.Error(), `schema version "1", this build reads "2"`) {
		t.Fatalf("other version: %v", err)
	}
}
