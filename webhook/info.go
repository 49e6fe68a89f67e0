package webhook

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/smtpgate/smtpgate/store"
)

// infoCacheSize is how many messages StoreInfo remembers: the events of
// one message (queued, sent, opened, clicked) tend to come close together.
const infoCacheSize = 1024

// StoreInfo returns a Config.MessageInfo that reads messages from st with
// an all-seeing scope, without their bodies (store.Store.GetMeta), and
// remembers the last infoCacheSize messages it read.
func StoreInfo(st store.Store) func(ctx context.Context, messageID string) (Info, error) {
	var mu sync.Mutex
	cache := make(map[string]Info)
	return func(ctx context.Context, id string) (Info, error) {
		mu.Lock()
		info, ok := cache[id]
		mu.Unlock()
		if ok {
			return info, nil
		}
		m, err := st.GetMeta(ctx, id, store.Scope{All: true})
		if err != nil {
			return Info{}, fmt.Errorf("webhook: message %s: %w", id, err)
		}
		info = Info{
			Subject:  m.Summary.Subject,
			Tags:     slices.Clone(m.Tags),
			Metadata: maps.Clone(m.Metadata),
		}
		if m.Summary.MessageID != "" {
			info.MessageIDHeader = "<" + m.Summary.MessageID + ">"
		}
		mu.Lock()
		if len(cache) >= infoCacheSize {
			for k := range cache { // drop an arbitrary entry
				delete(cache, k)
				break
			}
		}
		cache[id] = info
		mu.Unlock()
		return info, nil
	}
}
