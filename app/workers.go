package app

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/policy"
	"github.com/smtpgate/smtpgate/relay"
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
	// relay runs for the life of the App (its settings are swapped on
	// reload); relayBg stops it.
	relay   *relay.Worker
	relayBg *background
}

// Committed is the gateway's notifier: every committed message wakes the
// webhook worker (its events are due) and whoever else listens; a relayed
// one is handed to the relay worker's message cache.
func (a *App) Committed(msg *store.Message) {
	a.notifyEvents()
	a.workers.mu.Lock()
	rw := a.workers.relay
	a.workers.mu.Unlock()
	if rw != nil && len(msg.Deliveries) > 0 {
		rw.Remember(msg) // its first attempts need not read it back
		rw.Notify()
	}
	if a.web != nil {
		a.web.Committed(msg)
	}
}

// notifyEvents wakes the webhook worker: events were committed, with a
// message or on their own (opens, clicks).
func (a *App) notifyEvents() {
	a.workers.mu.Lock()
	wh := a.workers.webhook
	a.workers.mu.Unlock()
	if wh != nil {
		wh.Notify()
	}
}

// startRelay starts the relay worker when the policy has relays.
func (a *App) startRelay(s relay.Settings) error {
	if len(s.Routes) == 0 {
		return nil
	}
	owner, err := instanceID(a.Policy().Server.DataDir)
	if err != nil {
		return err
	}
	// Deliveries still leased to this instance belong to a previous run
	// that died: hand them back now rather than after their leases expire.
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = a.store.ReleaseDeliveries(rctx, "relay-"+owner)
	cancel()
	if err != nil {
		return fmt.Errorf("app: releasing the previous run's deliveries: %w", err)
	}
	w, err := relay.NewWorker(relay.Config{Settings: s, Owner: "relay-" + owner}, a.store, a.store, a.log.Named("relay"))
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bg := &background{cancel: cancel}
	bg.wg.Add(1)
	go func() {
		defer bg.wg.Done()
		if err := w.Run(ctx); err != nil {
			a.log.Error("relay worker stopped", zap.Error(err))
		}
	}()
	a.workers.mu.Lock()
	a.workers.relay, a.workers.relayBg = w, bg
	a.workers.mu.Unlock()
	return nil
}

// reloadRelay gives the running relay worker new settings, or starts one
// when a reload adds the first relay.
func (a *App) reloadRelay(s relay.Settings) error {
	a.workers.mu.Lock()
	w := a.workers.relay
	a.workers.mu.Unlock()
	if w == nil {
		return a.startRelay(s)
	}
	return w.Reload(s)
}

// stopRelay stops the relay worker: attempts in flight finish (within the
// worker's grace period) and the rest go back to the queue.
func (a *App) stopRelay() {
	a.workers.mu.Lock()
	bg := a.workers.relayBg
	a.workers.relay, a.workers.relayBg = nil, nil
	a.workers.mu.Unlock()
	bg.stop()
}

// startWorkers starts the background workers of pol, replacing those of the
// previous policy. The old ones stop first (finishing the requests in
// flight and releasing their leases): both generations lease under the same
// instance id and must never run at once.
func (a *App) startWorkers(pol *policy.Policy) {
	a.stopWorkers()
	ctx, cancel := context.WithCancel(context.Background())
	gen := &background{cancel: cancel}

	var wh *webhook.Worker
	if eps := webhookEndpoints(pol); len(eps) > 0 {
		owner, err := instanceID(pol.Server.DataDir)
		if err != nil {
			a.log.Error("webhook worker not started", zap.Error(err))
			cancel()
			return
		}
		// The previous generation has stopped: jobs still leased under this
		// instance's id belong to a run that died.
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		if err := a.store.ReleaseWebhookJobs(rctx, "webhook-"+owner); err != nil {
			a.log.Warn("releasing the previous run's webhook jobs", zap.Error(err))
		}
		rcancel()
		wh = webhook.New(webhook.Config{Endpoints: eps, MessageInfo: webhook.StoreInfo(a.store), Owner: "webhook-" + owner},
			a.store, a.log.Named("webhook"))
		gen.wg.Add(1)
		go func() {
			defer gen.wg.Done()
			if err := wh.Run(ctx); err != nil {
				a.log.Error("webhook worker stopped", zap.Error(err))
			}
		}()
	}

	a.workers.mu.Lock()
	a.workers.gen, a.workers.webhook = gen, wh
	a.workers.mu.Unlock()
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
