package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
)

// ErrServerClosed is returned by Start and Shutdown once Shutdown has been
// called.
var ErrServerClosed = errors.New("proxy: server closed")

// Server is smtpgate's SMTP front door: one go-smtp server behind every
// submission listener, another behind every bounces listener.
type Server struct {
	cfg       Config
	limits    Limits
	auth      Authenticator
	handler   Handler
	bounces   BounceReceiver
	bounceMax int64 // size limit on a bounces listener
	log       *zap.Logger
	tls       *tls.Config
	smtp      *smtp.Server // for submission listeners
	bsmtp     *smtp.Server // for bounces listeners; nil when there are none
	mechs     []string

	ctx    context.Context // parent of every Authenticator and Handler call
	cancel context.CancelFunc

	bodyBufs sync.Pool // *[bodyBufSize]byte

	mu        sync.Mutex
	started   bool
	stopping  bool
	listeners []*listener
	total     int
	perIP     map[netip.Addr]int
	conns     map[*conn]struct{}
	connWG    sync.WaitGroup // one per open conn
	serveWG   sync.WaitGroup // one per go-smtp Serve
}

// New checks cfg and returns a Server that is not listening yet. Zero
// fields of cfg.Limits take the values of DefaultLimits. cfg.TLS is cloned:
// its certificate callbacks (GetCertificate for reloads) keep working, its
// MinVersion is raised to TLS 1.2 and session tickets are turned on. h
// takes the mail of the submission listeners, cfg.Bounces that of the
// bounces listeners.
func New(cfg Config, auth Authenticator, h Handler, log *zap.Logger) (*Server, error) {
	if auth == nil || h == nil {
		return nil, errors.New("proxy: New needs an Authenticator and a Handler")
	}
	if log == nil {
		log = zap.NewNop()
	}
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	limits, err := cfg.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	tlsCfg := cfg.TLS.Clone()
	tlsCfg.MinVersion = max(tlsCfg.MinVersion, tls.VersionTLS12)
	tlsCfg.SessionTicketsDisabled = false

	s := &Server{
		cfg:       cfg,
		limits:    limits,
		auth:      auth,
		handler:   h,
		bounces:   cfg.Bounces,
		bounceMax: min(limits.MaxMessageBytes, MaxBounceBytes),
		log:       log,
		tls:       tlsCfg,
		mechs:     []string{sasl.Plain, sasl.Login},
		perIP:     make(map[netip.Addr]int),
		conns:     make(map[*conn]struct{}),
	}
	s.bodyBufs.New = func() any { return new([bodyBufSize]byte) }
	s.smtp = s.newSMTP(limits.MaxMessageBytes, false)
	for _, l := range cfg.Listeners {
		if l.Purpose == PurposeBounces {
			// AllowInsecureAuth only lets AUTH reach the session, which
			// refuses it with 502 in plaintext as under TLS (go-smtp alone
			// would say "523 TLS is required", as if AUTH were possible).
			s.bsmtp = s.newSMTP(s.bounceMax, true)
			break
		}
	}
	return s, nil
}

// newSMTP returns a go-smtp server with the limits and a message size limit
// of maxBytes.
func (s *Server) newSMTP(maxBytes int64, insecureAuth bool) *smtp.Server {
	ss := smtp.NewServer(backend{s})
	ss.Domain = s.cfg.Hostname
	ss.TLSConfig = s.tls
	ss.AllowInsecureAuth = insecureAuth
	ss.MaxLineLength = s.limits.MaxLineLength
	ss.MaxMessageBytes = maxBytes
	ss.MaxRecipients = s.limits.MaxRecipients
	ss.ReadTimeout = s.limits.CommandTimeout
	ss.WriteTimeout = s.limits.CommandTimeout
	ss.EnableSMTPUTF8 = true
	ss.ErrorLog = errorLog{s.log}
	// ss.Debug stays nil: it would log AUTH exchanges.
	return ss
}

// smtpFor returns the go-smtp server of a listener.
func (s *Server) smtpFor(l ListenerConfig) *smtp.Server {
	if l.Purpose == PurposeBounces {
		return s.bsmtp
	}
	return s.smtp
}

func checkConfig(cfg *Config) error {
	if cfg.Hostname == "" {
		return errors.New("proxy: Config.Hostname is empty")
	}
	if cfg.TLS == nil {
		return errors.New("proxy: Config.TLS is nil: STARTTLS and implicit TLS need a certificate")
	}
	if len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil {
		return errors.New("proxy: Config.TLS has no certificate and no GetCertificate")
	}
	if len(cfg.Listeners) == 0 {
		return errors.New("proxy: no listeners configured")
	}
	seen := make(map[string]bool, len(cfg.Listeners))
	for i, l := range cfg.Listeners {
		switch {
		case l.Name == "":
			return fmt.Errorf("proxy: listener %d has no name", i)
		case seen[l.Name]:
			return fmt.Errorf("proxy: listener name %q is used twice", l.Name)
		case l.TLS != TLSStartTLS && l.TLS != TLSImplicit:
			return fmt.Errorf("proxy: listener %q: TLS mode %q is neither %q nor %q", l.Name, l.TLS, TLSStartTLS, TLSImplicit)
		case l.Purpose != "" && l.Purpose != PurposeSubmission && l.Purpose != PurposeBounces:
			return fmt.Errorf("proxy: listener %q: purpose %q is neither %q nor %q", l.Name, l.Purpose, PurposeSubmission, PurposeBounces)
		case l.Purpose == PurposeBounces && l.TLS != TLSStartTLS:
			return fmt.Errorf("proxy: listener %q: a bounces listener receives mail servers, which do not use TLS mode %q; use %q", l.Name, l.TLS, TLSStartTLS)
		case l.Purpose == PurposeBounces && cfg.Bounces == nil:
			return fmt.Errorf("proxy: listener %q: a bounces listener needs Config.Bounces", l.Name)
		}
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			return fmt.Errorf("proxy: listener %q: address %q: %w", l.Name, l.Address, err)
		}
		seen[l.Name] = true
	}
	return nil
}

// withDefaults fills the zero fields from DefaultLimits and refuses
// negative ones.
func (l Limits) withDefaults() (Limits, error) {
	d := DefaultLimits()
	var bad []string
	fill := func(name string, v *int64, def int64) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			bad = append(bad, name)
		}
	}
	fillInt := func(name string, v *int, def int) {
		x := int64(*v)
		fill(name, &x, int64(def))
		*v = int(x)
	}
	fill("MaxMessageBytes", &l.MaxMessageBytes, d.MaxMessageBytes)
	fillInt("MaxRecipients", &l.MaxRecipients, d.MaxRecipients)
	fillInt("MaxLineLength", &l.MaxLineLength, d.MaxLineLength)
	fillInt("MaxConnections", &l.MaxConnections, d.MaxConnections)
	fillInt("MaxConnectionsIP", &l.MaxConnectionsIP, d.MaxConnectionsIP)
	fillInt("MaxAuthFailures", &l.MaxAuthFailures, d.MaxAuthFailures)
	fillInt("MaxMessagesPerConn", &l.MaxMessagesPerConn, d.MaxMessagesPerConn)
	for _, t := range []struct {
		name string
		v    *int64
		def  int64
	}{
		{"CommandTimeout", (*int64)(&l.CommandTimeout), int64(d.CommandTimeout)},
		{"DataTimeout", (*int64)(&l.DataTimeout), int64(d.DataTimeout)},
		{"AuthFailureDelay", (*int64)(&l.AuthFailureDelay), int64(d.AuthFailureDelay)},
	} {
		fill(t.name, t.v, t.def)
	}
	if len(bad) > 0 {
		return l, fmt.Errorf("proxy: negative limits: %s", strings.Join(bad, ", "))
	}
	return l, nil
}

// Start binds every listener and serves them in background goroutines. ctx
// bounds the binding; its values (not its cancellation) are passed on to the
// Authenticator and the Handler. If a listener cannot be bound, the ones
// already bound are closed and the error is returned.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopping:
		return ErrServerClosed
	case s.started:
		return errors.New("proxy: Start called twice")
	}
	var lc net.ListenConfig
	ls := make([]*listener, 0, len(s.cfg.Listeners))
	for _, lcfg := range s.cfg.Listeners {
		ln, err := lc.Listen(ctx, "tcp", lcfg.Address)
		if err != nil {
			for _, l := range ls {
				l.ln.Close()
			}
			return fmt.Errorf("proxy: listener %q: %w", lcfg.Name, err)
		}
		ls = append(ls, newListener(lcfg, s, ln))
	}
	s.started = true
	s.listeners = ls
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, l := range ls {
		l.start()
		s.serveWG.Add(1)
		go func() {
			defer s.serveWG.Done()
			if err := s.smtpFor(l.cfg).Serve(l); err != nil {
				s.log.Error("smtp listener stopped", zap.String("listener", l.cfg.Name), zap.Error(err))
			}
		}()
		s.log.Info("smtp listening", zap.String("listener", l.cfg.Name),
			zap.Stringer("address", l.Addr()), zap.String("tls", string(l.cfg.TLS)),
			zap.Bool("proxy_protocol", l.cfg.ProxyProtocol), zap.String("purpose", string(l.cfg.purpose())))
	}
	return nil
}

// Addr returns the bound address of the named listener, or nil when there is
// no such listener or the server has not started.
func (s *Server) Addr(listener string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.cfg.Name == listener {
			return l.Addr()
		}
	}
	return nil
}

// Shutdown stops accepting connections and asks the open ones to finish:
// an idle connection gets a 421 at once, one in a mail transaction may
// finish its message (then gets the 421), and no new transaction starts.
// When ctx is done first, the remaining connections are closed and the
// context of the Handler calls still running is canceled. Shutdown returns
// once no Handler or Authenticator call is running any more, with ctx's
// error if it had to force the connections closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.stopping = true
	conns := s.snapshotLocked()
	ls := s.listeners
	s.mu.Unlock()

	// go-smtp's Shutdown closes its listeners and then waits for every
	// connection; given a context that is already done it only does the
	// first part. The waiting is done below, on our own connections.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.smtp.Shutdown(done)
	if s.bsmtp != nil {
		_ = s.bsmtp.Shutdown(done)
	}
	for _, l := range ls {
		l.Close()
	}
	for _, c := range conns {
		c.beginShutdown()
	}

	finished := make(chan struct{})
	go func() {
		for _, l := range ls {
			l.wg.Wait()
		}
		s.serveWG.Wait()
		s.connWG.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		s.stopContext()
		return nil
	case <-ctx.Done():
	}
	s.stopContext()
	s.mu.Lock()
	conns = s.snapshotLocked()
	s.mu.Unlock()
	for _, c := range conns {
		// Not Close: that would wait for a write a client does not read.
		c.sock.abort()
	}
	<-finished
	return fmt.Errorf("proxy: shutdown forced: %w", ctx.Err())
}

func (s *Server) stopContext() {
	if s.cancel != nil {
		s.cancel()
	}
}

func (s *Server) snapshotLocked() []*conn {
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// open takes a limiter slot for a new connection, or returns the line to
// refuse it with.
func (s *Server) open(l *listener, nc net.Conn, remote net.Addr) (*conn, string) {
	ip := addrIP(remote)
	s.mu.Lock()
	switch {
	case s.stopping:
		s.mu.Unlock()
		return nil, lineShuttingDown
	case s.total >= s.limits.MaxConnections:
		s.mu.Unlock()
		return nil, lineTooManyConns
	case s.perIP[ip] >= s.limits.MaxConnectionsIP:
		s.mu.Unlock()
		return nil, lineTooManyConnsIP
	}
	s.total++
	s.perIP[ip]++
	sock := newFlushConn(nc)
	c := &conn{
		Conn:   sock,
		sock:   sock,
		srv:    s,
		lis:    l,
		remote: remote,
		ip:     ip,
		idle:   s.limits.CommandTimeout,
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()

	c.opened = time.Now()
	switch {
	case l.cfg.purpose() == PurposeBounces:
		c.optionalTLS = true
	case l.cfg.TLS == TLSStartTLS:
		c.gate = newGate(c)
	}
	return c, ""
}

// release gives back a connection's limiter slot.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	s.total--
	if n := s.perIP[c.ip] - 1; n > 0 {
		s.perIP[c.ip] = n
	} else {
		delete(s.perIP, c.ip)
	}
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

func (s *Server) getBodyBuf() *[bodyBufSize]byte  { return s.bodyBufs.Get().(*[bodyBufSize]byte) }
func (s *Server) putBodyBuf(b *[bodyBufSize]byte) { s.bodyBufs.Put(b) }

// addrIP returns the IP of a client address ("" addresses share one
// per-IP bucket).
func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// errorLog sends go-smtp's internal log lines (panics, connection errors)
// to zap.
type errorLog struct{ log *zap.Logger }

// Printf implements smtp.Logger.
func (l errorLog) Printf(format string, v ...any) { l.write(fmt.Sprintf(format, v...)) }

// Println implements smtp.Logger.
func (l errorLog) Println(v ...any) { l.write(fmt.Sprintln(v...)) }

func (l errorLog) write(msg string) {
	msg = strings.TrimSpace(msg)
	if strings.Contains(msg, "panic") {
		l.log.Error("go-smtp", zap.String("error", msg))
		return
	}
	// Failed handshakes and broken connections: scanners produce plenty.
	l.log.Debug("go-smtp", zap.String("error", msg))
}
