package enroll_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/enroll"
	"edgefleet/fleet/enroll/enrolltest"
)

func TestMem(t *testing.T) {
	enrolltest.Run(t, func(t *testing.T, o enroll.Options) enroll.Store {
		s := enroll.NewMem(o)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBolt(t *testing.T) {
	enrolltest.Run(t, func(t *testing.T, o enroll.Options) enroll.Store {
		s, err := enroll.OpenBolt(filepath.Join(t.TempDir(), "enroll.db"), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "enroll.db")
	clk := enrolltest.NewClock(time.Now())
	s, err := enroll.OpenBolt(path, enroll.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	used, _ := s.Add(ctx, "box-1", map[string]string{"site": "a"})
	if _, err := s.Redeem(ctx, used, nil); err != nil {
		t.Fatal(err)
	}
	fresh, _ := s.Add(ctx, "box-2", nil)
	s.Revoke(ctx, "box-3")
	s.Close()

	s, err = enroll.OpenBolt(path, enroll.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Redeem(ctx, used, nil); err == nil {
		t.Fatal("used token redeemed again after reopen")
	}
	if d, err := s.Redeem(ctx, fresh, nil); err != nil || d.ID != "box-2" {
		t.Fatalf("token made before reopen: %+v, %v", d, err)
	}
	if r, _ := s.IsRevoked(ctx, "box-3"); !r {
		t.Fatal("revocation lost on reopen")
	}
	if d, _ := s.Device(ctx, "box-1"); d.Labels["site"] != "a" || d.Enrolled.IsZero() {
		t.Fatalf("device after reopen: %+v", d)
	}
}

func TestBoltTokenNotStored(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "enroll.db")
	s, err := enroll.OpenBolt(path, enroll.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := s.Add(ctx, "box-1", nil)
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if strings.Contains(string(k)+string(v), tok) {
					t.Errorf("bucket %s holds the token in clear", name)
				}
				return nil
			})
		})
	})
}

func TestBoltSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "enroll.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("meta"))
		return b.Put([]byte("version"), []byte("99"))
	})
	db.Close()
	if _, err := enroll.OpenBolt(path, enroll.Options{}); err == nil || !strings.Contains(err.Error(), `"99"`) {
		t.Fatalf("newer schema: %v", err)
	}
}
