package sqlite

import (
	"context"
	"testing"

	"go.uber.org/zap"
)

// A new database gets 16 KiB pages (one page per typical body); WAL mode
// stays on; reopening keeps both.
func TestNewDatabasePageSize(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		db, err := Open(context.Background(), dir, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		var ps int
		var mode string
		if err := db.wdb.QueryRow("PRAGMA page_size").Scan(&ps); err != nil {
			t.Fatal(err)
		}
		if err := db.wdb.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if ps != pageSize || mode != "wal" {
			t.Fatalf("open %d: page_size %d journal_mode %s, want %d wal", i, ps, mode, pageSize)
		}
	}
}
