package wal

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Settings the log keeps for its user, one key each:
//
//	setting   'M' | name
//	          value: a uint64 (8)
//
// name is 1..maxSettingName bytes of [a-z_]. There is one so far,
// "kept_keys" (KeptKeys).
const (
	kindSetting byte = 'M'

	settingValueLen = 8
	maxSettingName  = 64

	settingKeptKeys = "kept_keys"
)

// validSettingName reports whether name can name a setting.
func validSettingName(name []byte) bool {
	if len(name) == 0 || len(name) > maxSettingName {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// appendSettingKey appends the key of the setting name.
func appendSettingKey(dst []byte, name string) []byte {
	return append(append(dst, kindSetting), name...)
}

// decodeSettingValue decodes a setting's value.
func decodeSettingValue(v []byte) (uint64, error) {
	if len(v) != settingValueLen {
		return 0, corruptf("setting value of %d bytes, want %d", len(v), settingValueLen)
	}
	return binary.BigEndian.Uint64(v), nil
}

// KeptKeys returns the number SetKeptKeys last recorded, 0 if none.
func (l *Log) KeptKeys() (int, error) {
	var n uint64
	err := l.readDB(func(db *pebble.DB) error {
		v, closer, err := db.Get(appendSettingKey(nil, settingKeptKeys))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err = decodeSettingValue(v)
		return errors.Join(err, closer.Close())
	})
	if err != nil {
		return 0, fmt.Errorf("read setting %s: %w", settingKeptKeys, err)
	}
	if n > 1<<31 {
		return 0, fmt.Errorf("read setting %s: %w", settingKeptKeys, corruptf("%d keys", n))
	}
	return int(n), nil
}

// SetKeptKeys records how many idempotency keys per room the caller keeps
// in memory and has not indexed (see IndexKeys). A caller restarted with a
// smaller number must still relearn the recorded number of keys from a
// room's messages (RecentKeys), or it would forget those in between.
//
// It does not wait for an fsync of its own: Pebble's log keeps order, so
// the setting is durable once any append queued after it is, before a
// room can have used more keys than it names.
func (l *Log) SetKeptKeys(n int) error {
	if n < 0 {
		return fmt.Errorf("%w: %d kept keys", ErrInvalid, n)
	}
	err := l.runTask(func(_ *pebble.DB, b *pebble.Batch) error {
		return b.Set(appendSettingKey(nil, settingKeptKeys), binary.BigEndian.AppendUint64(nil, uint64(n)), nil)
	})
	if err != nil {
		return fmt.Errorf("record setting %s: %w", settingKeptKeys, err)
	}
	return nil
}
