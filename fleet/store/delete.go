package store

import (
	"bytes"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
)

// DeviceDeleter is implemented by the stores that can forget a device
// (decommissioning it with purge): Bolt, Mem and Postgres.
//
// DeleteDevice deletes every record of the device and returns how many
// went. Bolt and Mem keep the seqs it sent known, as after retention: an
// event sent again is still a duplicate there.
type DeviceDeleter interface {
	DeleteDevice(ctx context.Context, device string) (int, error)
}

var (
	_ DeviceDeleter = (*Bolt)(nil)
	_ DeviceDeleter = (*Mem)(nil)
	_ DeviceDeleter = (*Postgres)(nil)
)

// DeleteDevice implements DeviceDeleter. It walks the whole events bucket
// (keys are ordered by time, not device) in transactions of at most
// retainChunk deletions.
func (s *Bolt) DeleteDevice(ctx context.Context, device string) (int, error) {
	total := 0
	var from []byte
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("store: delete device: %w", err)
		}
		n, scanned := 0, 0
		var freed uint64
		var next []byte
		err := s.update(func(tx *bolt.Tx) error {
			n, scanned, freed, next = 0, 0, 0, nil
			meta, evs := tx.Bucket(bucketMeta), tx.Bucket(bucketEvents)
			c := evs.Cursor()
			var dead [][]byte
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
			}
			for ; k != nil; k, v = c.Next() {
				if n >= retainChunk || scanned >= 8*retainChunk {
					next = bytes.Clone(k)
					break
				}
				scanned++
				if len(k) >= 17 && string(k[8:len(k)-9]) == device {
					dead = append(dead, bytes.Clone(k))
					n++
					freed += uint64(len(v))
				}
			}
			for _, k := range dead {
				if err := evs.Delete(k); err != nil {
					return err
				}
			}
			if n == 0 {
				return nil
			}
			if err := putUint(meta, keyCount, getUint(meta, keyCount)-min(getUint(meta, keyCount), uint64(n))); err != nil {
				return err
			}
			return putUint(meta, keyBytes, getUint(meta, keyBytes)-min(getUint(meta, keyBytes), freed))
		})
		if err != nil {
			return total, fmt.Errorf("store: delete device: %w", err)
		}
		if n > 0 {
			s.records.Add(^uint64(n - 1))
			s.recordsBytes.Add(^(freed - 1))
		}
		total += n
		if next == nil {
			return total, nil
		}
		from = next
	}
}

// DeleteDevice implements DeviceDeleter.
func (m *Mem) DeleteDevice(ctx context.Context, device string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	n := len(m.records[device])
	for seq := range m.records[device] {
		delete(m.size, sizeKey(device, seq))
	}
	delete(m.records, device)
	return n, nil
}

// DeleteDevice implements DeviceDeleter: one DELETE across the day
// partitions (through the device index), keeping detection_days in step.
func (s *Postgres) DeleteDevice(ctx context.Context, device string) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		n, err = deleteRows(ctx, tx, "device = $1", device)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: delete device: %w", err)
	}
	return n, nil
}
