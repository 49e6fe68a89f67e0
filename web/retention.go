package web

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// retentionPause is the pause between two Prune batches of one pass, so
// that readers and the SMTP path get the database in between.
const retentionPause = 20 * time.Millisecond

// RunRetention prunes captured mail by Config.Retention every
// Config.RetentionEvery until ctx ends, and returns nil then. It returns at
// once when Config.Retention is nil.
func (s *Server) RunRetention(ctx context.Context) error {
	if s.cfg.Retention == nil {
		return nil
	}
	t := time.NewTicker(s.cfg.RetentionEvery)
	defer t.Stop()
	for {
		if _, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("web: retention pass failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Prune runs one retention pass: for every rule, store.Capture.Prune in
// batches of Config.RetentionBatch until nothing is left to prune. It
// returns how many messages it deleted. Only captured mail is ever
// deleted: the store's Prune never touches relayed messages.
func (s *Server) Prune(ctx context.Context) (int, error) {
	if s.cfg.Retention == nil {
		return 0, nil
	}
	total := 0
	var firstErr error
	for _, rule := range s.cfg.Retention() {
		if rule.MaxCount <= 0 && rule.MaxAge <= 0 {
			continue
		}
		now := time.Now()
		for {
			n, err := s.st.Prune(ctx, rule, now, s.cfg.RetentionBatch)
			total += n
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("prune login %q: %w", rule.Login, err)
				}
				break
			}
			if n > 0 {
				s.log.Debug("web: pruned captured mail", zap.String("login", rule.Login), zap.Int("messages", n))
			}
			if n < s.cfg.RetentionBatch {
				break
			}
			select {
			case <-ctx.Done():
				return total, ctx.Err()
			case <-time.After(retentionPause):
			}
		}
	}
	if total > 0 {
		s.log.Info("web: retention pass", zap.Int("pruned", total))
	}
	return total, firstErr
}
