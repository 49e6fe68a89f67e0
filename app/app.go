// Package app assembles a running smtpgate from a policy: the store, the SMTP
// front door, the gateway and the HTTP server, with reload on SIGHUP and
// graceful shutdown. cmd/smtpgate is a thin CLI over it, and end-to-end tests
// start it in-process.
package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/bounces"
	"github.com/smtpgate/smtpgate/certs"
	"github.com/smtpgate/smtpgate/gateway"
	"github.com/smtpgate/smtpgate/policy"
	"github.com/smtpgate/smtpgate/proxy"
	"github.com/smtpgate/smtpgate/relay"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/postgres"
	"github.com/smtpgate/smtpgate/store/sqlite"
	"github.com/smtpgate/smtpgate/web"
)

// Options say what to run.
type Options struct {
	// PolicyPath is the policy file; "" runs the embedded dev policy.
	PolicyPath string
	// DataDir is the dev policy's data directory (default "./data").
	DataDir string
	// Dev are the dev policy's addresses (default DefaultDevAddrs).
	Dev *DevAddrs
	// LookupEnv resolves env() in the policy file (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
	Log       *zap.Logger
}

// App is a running smtpgate.
type App struct {
	opts          Options
	log           *zap.Logger
	cur           atomic.Pointer[state]
	dev           *DevSecrets
	cert          *certs.Holder
	store         store.Store
	proxy         *proxy.Server
	web           *web.Server
	http          *http.Server
	httpLn        net.Listener
	workers       workers
	stopRetention context.CancelFunc
}

// state is the policy in force and what is built from it; it is swapped as
// a whole on reload.
type state struct {
	pol     *policy.Policy
	tr      *transforms
	track   http.Handler           // redeems tracking tokens; nil without a tracking secret
	bounces *bounces.Handler       // takes VERP bounces; nil without a bounce domain
	relay   relay.Settings         // routes, DKIM signer, VERP for the relay worker
	routes  map[string]relay.Route // relay.Routes by name, for the gateway
}

// New loads the policy and opens the store; nothing listens yet.
func New(ctx context.Context, opts Options) (*App, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	a := &App{opts: opts, log: opts.Log}
	pol, err := a.loadPolicy()
	if err != nil {
		return nil, err
	}
	tr, err := buildTransforms(pol)
	if err != nil {
		return nil, err
	}
	cert, err := a.loadCert(pol)
	if err != nil {
		return nil, err
	}
	a.cert = certs.NewHolder(cert)

	st, err := openStore(ctx, pol, a.log)
	if err != nil {
		return nil, err
	}
	a.store = st
	first, err := a.newState(pol, tr)
	if err != nil {
		st.Close()
		return nil, err
	}
	a.cur.Store(first)

	a.web = web.New(webConfig(pol, a), st, keyResolver{a}, a.log.Named("http"))
	if pub := pol.Tracking.PublicURL; pub != "" {
		a.mountTracking(a.web, pub)
	}

	pcfg := proxyConfig(pol, a.cert)
	for _, l := range pcfg.Listeners {
		if l.Purpose == proxy.PurposeBounces {
			pcfg.Bounces = bounceSwitch{a}
		}
	}
	px, err := proxy.New(pcfg, authenticator{a}, gateway.New(pol.Server.Hostname, a, st, a, a.log.Named("gateway")), a.log.Named("smtp"))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("app: %w", err)
	}
	a.proxy = px

	return a, nil
}

func (a *App) newState(pol *policy.Policy, tr *transforms) (*state, error) {
	rs, err := relaySettings(pol, tr)
	if err != nil {
		return nil, err
	}
	return &state{pol: pol, tr: tr, track: a.trackHandler(tr.codec), bounces: a.bounceHandler(tr),
		relay: rs, routes: routesByName(rs)}, nil
}

// Policy returns the policy in force.
func (a *App) Policy() *policy.Policy { return a.cur.Load().pol }

// Current returns the policy and pipeline in force (gateway.Source).
func (a *App) Current() gateway.Config {
	st := a.cur.Load()
	return gateway.Config{Policy: st.pol, Pipeline: st.tr.pipeline, Routes: st.routes}
}

// Store returns the app's store (for tests and tools).
func (a *App) Store() store.Store { return a.store }

// DevSecrets returns the dev login's secrets, or nil when a policy file is used.
func (a *App) DevSecrets() *DevSecrets { return a.dev }

func (a *App) loadPolicy() (*policy.Policy, error) {
	if a.opts.PolicyPath != "" {
		pol, err := policy.Load(a.opts.PolicyPath, policy.Options{LookupEnv: a.opts.LookupEnv})
		if err != nil {
			return nil, err
		}
		return pol, nil
	}
	dataDir := a.opts.DataDir
	if dataDir == "" {
		dataDir = "data"
	}
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	if a.dev == nil {
		s, err := loadDevSecrets(dataDir)
		if err != nil {
			return nil, err
		}
		a.dev = s
	}
	addrs := DefaultDevAddrs
	if a.opts.Dev != nil {
		addrs = *a.opts.Dev
	}
	return policy.Parse("<embedded dev policy>", devPolicy, policy.Options{LookupEnv: devEnv(dataDir, addrs, a.dev)})
}

func (a *App) loadCert(pol *policy.Policy) (*tls.Certificate, error) {
	if t := pol.Server.TLS; t != nil {
		return certs.Load(t.CertFile, t.KeyFile)
	}
	return certs.SelfSigned(filepath.Join(pol.Server.DataDir, "tls"), pol.Server.Hostname)
}

func openStore(ctx context.Context, pol *policy.Policy, log *zap.Logger) (store.Store, error) {
	switch pol.Server.Store.Driver {
	case "", "sqlite":
		path := pol.Server.Store.Path
		if path == "" {
			path = pol.Server.DataDir
		}
		db, err := sqlite.Open(ctx, path, log.Named("store"))
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		return db, nil
	case "postgres":
		db, err := postgres.Open(ctx, pol.Server.Store.DSN, log.Named("store"))
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		return db, nil
	}
	return nil, fmt.Errorf("app: store driver %q is not available in this build", pol.Server.Store.Driver)
}

func proxyConfig(pol *policy.Policy, cert *certs.Holder) proxy.Config {
	s := pol.Server
	cfg := proxy.Config{
		Hostname: s.Hostname,
		TLS:      cert.ServerConfig(),
		Limits: proxy.Limits{
			MaxMessageBytes:  s.MaxMessageSize,
			MaxRecipients:    s.MaxRecipients,
			MaxConnections:   s.Limits.MaxConnections,
			MaxConnectionsIP: s.Limits.MaxConnectionsPerIP,
			CommandTimeout:   s.Limits.CommandTimeout,
			DataTimeout:      s.Limits.DataTimeout,
			MaxAuthFailures:  s.Limits.MaxAuthFailures,
		},
	}
	for _, l := range s.Listeners {
		cfg.Listeners = append(cfg.Listeners, proxy.ListenerConfig{
			Name: l.Name, Address: l.Address, TLS: proxy.TLSMode(l.TLS), ProxyProtocol: l.ProxyProtocol,
			Purpose: proxy.Purpose(l.Purpose),
		})
	}
	return cfg
}

// Start opens every listener and starts the background workers.
func (a *App) Start(ctx context.Context) error {
	if err := a.proxy.Start(ctx); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	a.startWorkers(a.Policy())
	rctx, cancel := context.WithCancel(context.Background())
	a.stopRetention = cancel
	go func() {
		if err := a.web.RunRetention(rctx); err != nil && rctx.Err() == nil {
			a.log.Error("retention stopped", zap.Error(err))
		}
	}()
	if err := a.startRelay(a.cur.Load().relay); err != nil {
		a.proxy.Shutdown(ctx)
		return err
	}
	if addr := a.Policy().Server.HTTP.Address; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			a.proxy.Shutdown(ctx)
			return fmt.Errorf("app: http listener: %w", err)
		}
		a.httpLn = ln
		a.http = &http.Server{
			Handler:           a.web,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          zap.NewStdLog(a.log.Named("http")),
		}
		// Shutdown does not end long-lived streams (live updates, wait).
		a.http.RegisterOnShutdown(a.web.Close)
		go func() {
			if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("http server stopped", zap.Error(err))
			}
		}()
	}
	return nil
}

// SMTPAddr returns the bound address of an SMTP listener.
func (a *App) SMTPAddr(listener string) net.Addr { return a.proxy.Addr(listener) }

// HTTPAddr returns the bound HTTP address, or nil when there is none.
func (a *App) HTTPAddr() net.Addr {
	if a.httpLn == nil {
		return nil
	}
	return a.httpLn.Addr()
}

// Reload re-reads the policy (and the certificate). A policy with errors is
// refused and the one in force stays. Listener, HTTP address and store
// changes need a restart (Reload logs a warning naming them); open
// connections are never dropped.
func (a *App) Reload() error {
	pol, err := a.loadPolicy()
	if err != nil {
		a.log.Error("policy reload refused; keeping the policy in force", zap.Error(err))
		return err
	}
	tr, err := buildTransforms(pol)
	if err != nil {
		a.log.Error("policy reload refused: features", zap.Error(err))
		return err
	}
	cert, err := a.loadCert(pol)
	if err != nil {
		a.log.Error("policy reload refused: certificate", zap.Error(err))
		return err
	}
	next, err := a.newState(pol, tr)
	if err != nil {
		a.log.Error("policy reload refused: relay settings", zap.Error(err))
		return err
	}
	if later := restartNeeded(a.Policy(), pol); len(later) > 0 {
		a.log.Warn("policy reloaded; these settings take effect only after a restart", zap.Strings("settings", later))
	}
	a.cert.Set(cert)
	a.cur.Store(next)
	a.startWorkers(pol)
	if err := a.reloadRelay(next.relay); err != nil {
		a.log.Error("relay settings not applied", zap.Error(err))
	}
	a.log.Info("policy reloaded", zap.Int("credentials", len(pol.Credentials)))
	return nil
}

// restartNeeded names the settings that differ between the policy in force
// and the reloaded one but are fixed at start: the sockets, the store, the
// data directory, and what the web server mounts (the UI, the tracking
// paths of public_url).
func restartNeeded(old, cur *policy.Policy) []string {
	o, c := old.Server, cur.Server
	var out []string
	for _, d := range []struct {
		name    string
		changed bool
	}{
		{"listeners", !reflect.DeepEqual(o.Listeners, c.Listeners)},
		{"http.address", o.HTTP.Address != c.HTTP.Address},
		{"http.ui", o.HTTP.UI != c.HTTP.UI},
		{"http.public_url", o.HTTP.PublicURL != c.HTTP.PublicURL},
		{"store", o.Store != c.Store},
		{"data_dir", o.DataDir != c.DataDir},
	} {
		if d.changed {
			out = append(out, d.name)
		}
	}
	return out
}

// Shutdown stops accepting, lets sessions finish until ctx is done, and
// closes the store.
func (a *App) Shutdown(ctx context.Context) error {
	var errs []error
	if err := a.proxy.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if a.http != nil {
		if err := a.http.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if a.stopRetention != nil {
		a.stopRetention()
	}
	a.stopWorkers()
	a.stopRelay()
	if err := a.store.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run starts the app and serves until ctx is cancelled or SIGINT/SIGTERM
// arrives; SIGHUP reloads the policy. banner, if not nil, gets the start-up
// text; readyFile, if not "", gets the bound addresses as JSON (written
// atomically once every listener is up).
func (a *App) Run(ctx context.Context, banner io.Writer, readyFile string) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	if banner != nil {
		a.writeBanner(banner)
	}
	if readyFile != "" {
		b, _ := json.Marshal(a.Addrs())
		if err := os.WriteFile(readyFile+".tmp", b, 0o644); err != nil {
			return fmt.Errorf("app: ready file: %w", err)
		}
		if err := os.Rename(readyFile+".tmp", readyFile); err != nil {
			return fmt.Errorf("app: ready file: %w", err)
		}
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				_ = a.Reload()
				continue
			}
			a.log.Info("shutting down", zap.String("signal", s.String()))
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return a.Shutdown(sctx)
	}
}

// authenticator adapts the policy in force to proxy.Authenticator.
type authenticator struct{ a *App }

func (au authenticator) Authenticate(ctx context.Context, user, pass string) (proxy.Login, error) {
	c, err := au.a.Policy().Authenticate(ctx, user, pass)
	if errors.Is(err, policy.ErrBadCredentials) {
		return nil, proxy.ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// keyResolver adapts the policy's API keys to web.KeyResolver.
type keyResolver struct{ a *App }

func (k keyResolver) Scope(key string) (store.Scope, bool) {
	logins, all, ok := k.a.Policy().APIKeyScope(key)
	return store.Scope{All: all, Logins: logins}, ok
}

// Addrs are the bound addresses, as written to the ready file.
type Addrs struct {
	SMTP map[string]string `json:"smtp"` // listener name -> host:port
	HTTP string            `json:"http,omitempty"`
}

// Addrs returns the bound addresses; call after Start.
func (a *App) Addrs() Addrs {
	out := Addrs{SMTP: map[string]string{}}
	for _, l := range a.Policy().Server.Listeners {
		if ad := a.SMTPAddr(l.Name); ad != nil {
			out.SMTP[l.Name] = ad.String()
		}
	}
	if h := a.HTTPAddr(); h != nil {
		out.HTTP = h.String()
	}
	return out
}

// webConfig is the HTTP server's configuration from the policy. Retention
// rules are read from the policy in force at each pruning round.
func webConfig(pol *policy.Policy, a *App) web.Config {
	h := pol.Server.HTTP
	cfg := web.Config{
		UI: h.UI,
		// Read from the policy in force: a reload applies at once.
		OpenNetworks: func() []*net.IPNet { return a.Policy().Server.HTTP.OpenNetworks },
		SecureCookie: strings.HasPrefix(h.PublicURL, "https://"),
		Retention: func() []store.Retention {
			cur := a.Policy()
			var rules []store.Retention
			for name, c := range cur.Credentials {
				if c.Retention.MaxMessages > 0 || c.Retention.MaxAge > 0 {
					rules = append(rules, store.Retention{Login: name, MaxCount: c.Retention.MaxMessages, MaxAge: c.Retention.MaxAge})
				}
			}
			sort.Slice(rules, func(i, j int) bool { return rules[i].Login < rules[j].Login })
			return rules
		},
	}
	if pol.Server.Store.Driver == "postgres" {
		// Other instances commit to the same database: look for their
		// mail too, not only for this process's commits.
		cfg.StorePoll = 10 * time.Second
	}
	return cfg
}
