package postgres

import (
	"context"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/storetest"
)

// TestConformance runs the shared store suite. Each of its directories
// maps to a schema of its own; reopening a directory opens a new pool on
// the same schema.
func TestConformance(t *testing.T) {
	testutil.PostgresDSN(t)
	var s schemas
	storetest.Run(t, func(t *testing.T, dir string) store.Store {
		db, err := Open(context.Background(), s.dsn(t, dir), zaptest.NewLogger(t))
		if err != nil {
			t.Fatalf("Open(%s): %v", dir, err)
		}
		return db
	})
}
