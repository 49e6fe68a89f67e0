package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
	"go.uber.org/zap"
)

const (
	// proxyHeaderTimeout bounds the wait for a PROXY protocol header (it is
	// never longer than Limits.CommandTimeout).
	proxyHeaderTimeout = 10 * time.Second
	// refuseTimeout bounds writing a refusal to a connection over a limit,
	// TLS handshake included on an implicit TLS listener.
	refuseTimeout = 5 * time.Second
	// maxAcceptDelay caps the back-off after a failed accept (EMFILE...).
	maxAcceptDelay = time.Second
)

// listener is the net.Listener go-smtp serves. go-smtp has no hook before
// its banner, so connection limits and the PROXY protocol live here: an
// accept loop takes connections from the socket, reads the PROXY header in
// a goroutine of its own (a slow header never holds up other clients),
// applies the connection limits to the client's real address, refuses the
// connections over a limit with a 421 written here, and hands the others to
// go-smtp, inside tls.Server on an implicit TLS listener.
type listener struct {
	cfg   ListenerConfig
	srv   *Server
	ln    net.Listener // the bound socket
	ready chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup // the accept loop and the admission goroutines

	mu      sync.Mutex
	pending map[net.Conn]struct{} // accepted, not yet handed over or refused
}

func newListener(cfg ListenerConfig, srv *Server, ln net.Listener) *listener {
	return &listener{
		cfg:     cfg,
		srv:     srv,
		ln:      ln,
		ready:   make(chan net.Conn),
		done:    make(chan struct{}),
		pending: make(map[net.Conn]struct{}),
	}
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener. It also drops the connections still
// waiting for their PROXY header or refusal.
func (l *listener) Close() error {
	err := net.ErrClosed
	l.once.Do(func() {
		close(l.done)
		err = l.ln.Close()
		l.mu.Lock()
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
	})
	return err
}

// Addr implements net.Listener.
func (l *listener) Addr() net.Addr { return l.ln.Addr() }

// start runs the accept loop.
func (l *listener) start() {
	l.wg.Add(1)
	go l.acceptLoop()
}

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.closed() {
				return
			}
			// EMFILE, ECONNABORTED...: back off and go on.
			delay = min(max(2*delay, 5*time.Millisecond), maxAcceptDelay)
			l.srv.log.Warn("accept failed", zap.String("listener", l.cfg.Name), zap.Error(err), zap.Duration("retry_in", delay))
			select {
			case <-time.After(delay):
			case <-l.done:
				return
			}
			continue
		}
		delay = 0
		if l.cfg.ProxyProtocol {
			if !l.track(raw) {
				continue
			}
			l.wg.Add(1)
			go l.admitProxied(raw)
			continue
		}
		l.admit(raw, raw.RemoteAddr())
	}
}

// admitProxied reads the PROXY header, then admits the connection under the
// client address it names. A connection without a valid header is dropped
// without a word: whatever sent it is not the trusted proxy.
func (l *listener) admitProxied(raw net.Conn) {
	defer l.wg.Done()
	pc := proxyproto.NewConn(raw,
		proxyproto.WithPolicy(proxyproto.REQUIRE),
		proxyproto.SetReadHeaderTimeout(min(proxyHeaderTimeout, l.srv.limits.CommandTimeout)))
	if pc.ProxyHeader() == nil {
		_, err := pc.Read(nil) // the header error, kept by the first read
		l.srv.log.Info("dropped connection without a valid PROXY header",
			zap.String("listener", l.cfg.Name), zap.Stringer("peer", raw.RemoteAddr()), zap.Error(err))
		l.untrack(raw)
		raw.Close()
		return
	}
	l.untrack(raw)
	l.admit(pc, pc.RemoteAddr())
}

// admit applies the connection limits and hands nc to go-smtp.
func (l *listener) admit(nc net.Conn, remote net.Addr) {
	c, refusal := l.srv.open(l, nc, remote)
	if c == nil {
		if l.track(nc) {
			l.wg.Add(1)
			go l.refuse(nc, remote, refusal)
		}
		return
	}
	var out net.Conn = c
	if l.cfg.TLS == TLSImplicit {
		out = tls.Server(c, l.srv.tls)
	}
	select {
	case l.ready <- out:
	case <-l.done:
		c.end("shutdown")
		c.Close()
	}
}

// refuse writes a 421 and closes the connection, over TLS on an implicit
// TLS listener (a plaintext line would only be a handshake error there).
func (l *listener) refuse(nc net.Conn, remote net.Addr, line string) {
	defer l.wg.Done()
	defer l.untrack(nc)
	defer nc.Close()
	l.srv.log.Info("connection refused", zap.String("listener", l.cfg.Name),
		zap.Stringer("remote", remote), zap.String("reply", line[:len(line)-2]))
	_ = nc.SetDeadline(time.Now().Add(refuseTimeout))
	var w io.Writer = nc
	if l.cfg.TLS == TLSImplicit {
		tc := tls.Server(nc, l.srv.tls)
		if err := tc.Handshake(); err != nil {
			return
		}
		defer tc.Close()
		w = tc
	}
	_, _ = io.WriteString(w, line)
}

// track records a connection in admission; it returns false (and closes
// the connection) when the listener is already closed.
func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed() {
		c.Close()
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *listener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
}

func (l *listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}
