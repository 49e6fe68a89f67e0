package app

import (
	"context"
	"sort"
	"sync"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/policy"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/webhook"
)

// background is a set of goroutines that run for one policy generation and
// are replaced on reload.
type background struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (b *background) stop() {
	if b == nil {
		return
	}
	b.cancel()
	b.wg.Wait()
}

// workers holds what runs in the background and is told about commits.
type workers struct {
	mu      sync.Mutex
	gen     *background
	webhook *webhook.Worker
}

// Committed is the gateway's notifier: every committed message wakes the
// webhook worker (its events are due) and whoever else listens.
func (a *App) Committed(msg *store.Message) {
	a.workers.mu.Lock()
	wh := a.workers.webhook
	a.workers.mu.Unlock()
	if wh != nil {
		wh.Notify()
	}
}

// startWorkers starts the background workers of pol, replacing those of the
// previous policy (which finish their work in flight first).
func (a *App) startWorkers(pol *policy.Policy) {
	ctx, cancel := context.WithCancel(context.Background())
	gen := &background{cancel: cancel}

	var wh *webhook.Worker
	if eps := webhookEndpoints(pol); len(eps) > 0 {
		wh = webhook.New(webhook.Config{Endpoints: eps, MessageInfo: webhook.StoreInfo(a.store)}, a.store, a.log.Named("webhook"))
		gen.wg.Add(1)
		go func() {
			defer gen.wg.Done()
			if err := wh.Run(ctx); err != nil {
				a.log.Error("webhook worker stopped", zap.Error(err))
			}
		}()
	}

	a.workers.mu.Lock()
	old := a.workers.gen
	a.workers.gen, a.workers.webhook = gen, wh
	a.workers.mu.Unlock()
	old.stop()
}

// stopWorkers stops the background workers and waits for them.
func (a *App) stopWorkers() {
	a.workers.mu.Lock()
	gen := a.workers.gen
	a.workers.gen, a.workers.webhook = nil, nil
	a.workers.mu.Unlock()
	gen.stop()
}

func webhookEndpoints(pol *policy.Policy) []webhook.Endpoint {
	names := make([]string, 0, len(pol.Webhooks))
	for n := range pol.Webhooks {
		names = append(names, n)
	}
	sort.Strings(names)
	var eps []webhook.Endpoint
	for _, n := range names {
		w := pol.Webhooks[n]
		eps = append(eps, webhook.Endpoint{Name: w.Name, URL: w.URL, Secret: []byte(w.Secret), Events: w.Events, Logins: w.Logins, MaxAge: w.MaxAge})
	}
	return eps
}
