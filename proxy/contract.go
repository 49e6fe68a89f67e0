// Package proxy owns smtpgate's SMTP front door: listeners (STARTTLS-mandatory
// and implicit TLS, optionally behind the PROXY protocol), sessions on
// github.com/emersion/go-smtp, AUTH PLAIN/LOGIN over TLS only, and the limits
// on everything a client controls. An accepted message is handed to a Handler;
// the proxy knows nothing of policies, content features or storage engines.
//
// What the proxy adds to go-smtp (see go-libs.md §1 for go-smtp's gaps):
// before STARTTLS a gate answers everything but EHLO, HELO, NOOP, RSET,
// QUIT and STARTTLS with "530 5.7.0" and drops plaintext pipelined after
// STARTTLS (gate.go); MAIL needs AUTH ("530 5.7.0 Authentication
// required"); bodies reach the Handler with bare CR and LF normalised to
// CRLF (body.go); read deadlines slide while a body streams, so
// DataTimeout bounds a transfer and CommandTimeout bounds idleness
// (conn.go); connection limits and the PROXY protocol sit in a net.Listener
// in front of go-smtp (listener.go); the reply after DATA is
// "250 2.0.0 queued as <id>"; replies are held until the connection reads
// again, so the replies to a pipelined group (RFC 2920) leave in one write
// rather than one per reply line (flush.go).
//
// A listener whose Purpose is PurposeBounces is the other door: the one on
// port 25 where mail servers return DSNs to the VERP addresses of the bounce
// domain. There AUTH is neither advertised nor accepted, STARTTLS is offered
// but optional (no gate), any sender is taken, the null sender included, and
// a recipient is accepted only when Config.Bounces.CheckRecipient says so, so
// that the listener can never relay; messages are smaller
// (MaxBounceBytes) and go to Config.Bounces instead of the Handler. The
// limits, the body normalisation, the timeouts and the PROXY protocol are
// the same as on a submission listener.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// Login is an authenticated SMTP identity.
type Login interface {
	// Name is the login's name (the credential label in the policy).
	Name() string
	// SenderAllowed reports whether the login may use addr as envelope sender
	// (and as From). addr is the bare address, possibly "" for the null sender.
	SenderAllowed(addr string) bool
}

// ErrBadCredentials is what an Authenticator returns for a wrong user name or
// password. Any other error is treated as a temporary failure (454 4.7.0).
var ErrBadCredentials = errors.New("proxy: bad credentials")

// Authenticator checks a user name and password.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (Login, error)
}

// Envelope is everything known about a message besides its body.
type Envelope struct {
	Login      Login // nil on a bounces listener, which has no AUTH
	MailFrom   string
	Recipients []string
	RemoteAddr net.Addr // the client's address (from the PROXY header if one was sent)
	Helo       string
	// TLS is nil on a plaintext connection: never on a submission listener,
	// possibly on a bounces listener, where STARTTLS is optional.
	TLS      *tls.ConnectionState
	Listener string // the listener's name from the policy
	UTF8     bool   // SMTPUTF8 was given on MAIL
	Received time.Time
}

// Handler takes an accepted message. The body is dot-unstuffed, has CRLF line
// endings (bare CR and LF are normalised to CRLF by the proxy) and is cut off
// with an error wrapping ErrTooLarge past the size limit; Handle must return
// that error. Handle returns the queue id only once the message is durable.
// An error of type *smtp.SMTPError is sent to the client as is; any other
// error becomes "451 4.3.0".
type Handler interface {
	Handle(ctx context.Context, env *Envelope, body io.Reader) (id string, err error)
}

// ErrTooLarge is returned by the body reader once the message exceeds the size limit.
var ErrTooLarge = errors.New("proxy: message exceeds the size limit")

// RecipientChecker decides which recipients a bounces listener accepts.
// CheckRecipient returns nil to accept addr (the bare address, as in
// Envelope.Recipients). An error wrapping ErrNoSuchUser is answered
// "550 5.1.1", one wrapping ErrRelayDenied "550 5.7.1", an *smtp.SMTPError
// is sent as it is, and any other error is a temporary failure
// ("451 4.3.0", its text stays in the log). Every address it does not
// accept is refused: the listener relays nothing on its own.
type RecipientChecker interface {
	CheckRecipient(ctx context.Context, addr string) error
}

// BounceReceiver takes the mail of bounces listeners: CheckRecipient at
// RCPT, Handle (with the same contract as a submission Handler, and a nil
// Envelope.Login) at the end of DATA.
type BounceReceiver interface {
	RecipientChecker
	Handler
}

// ErrNoSuchUser is what a RecipientChecker returns for an address on its
// own domain that it does not know (a malformed or tampered VERP address).
var ErrNoSuchUser = errors.New("proxy: no such user")

// ErrRelayDenied is what a RecipientChecker returns for an address on a
// domain it does not receive mail for.
var ErrRelayDenied = errors.New("proxy: relay access denied")

// MaxBounceBytes is the size limit on a bounces listener, or
// Limits.MaxMessageBytes when that is smaller. A DSN carries at most the
// returned message's headers or a copy of it; 10 MiB is plenty.
const MaxBounceBytes = 10 << 20

// Purpose is what a listener is for.
type Purpose string

const (
	// PurposeSubmission (also the empty Purpose): applications log in
	// over TLS and submit mail to the Handler.
	PurposeSubmission Purpose = "submission"
	// PurposeBounces: mail servers return bounces, without AUTH, to the
	// addresses Config.Bounces accepts. Its TLS mode must be TLSStartTLS,
	// which is then offered but optional.
	PurposeBounces Purpose = "bounces"
)

// TLSMode is how a listener uses TLS.
type TLSMode string

const (
	// TLSStartTLS: plaintext banner, STARTTLS mandatory before AUTH and MAIL.
	// On a bounces listener STARTTLS is offered but optional.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit: TLS from the first byte (port 465 style).
	TLSImplicit TLSMode = "implicit"
)

// ListenerConfig is one SMTP listener.
type ListenerConfig struct {
	Name          string
	Address       string // host:port
	TLS           TLSMode
	ProxyProtocol bool    // expect a PROXY v1/v2 header on every connection
	Purpose       Purpose // "" is PurposeSubmission
}

// purpose returns the listener's Purpose, PurposeSubmission for "".
func (l ListenerConfig) purpose() Purpose {
	if l.Purpose == "" {
		return PurposeSubmission
	}
	return l.Purpose
}

// Limits bounds what a client may do. Zero values mean the defaults in DefaultLimits.
type Limits struct {
	MaxMessageBytes    int64         // SIZE; default 25 MiB
	MaxRecipients      int           // per message; default 100
	MaxLineLength      int           // per line in commands and DATA; default 64 KiB
	MaxConnections     int           // in total; default 1000
	MaxConnectionsIP   int           // per client IP; default 50
	CommandTimeout     time.Duration // idle time waiting for a command; default 5m
	DataTimeout        time.Duration // for the whole DATA/BDAT transfer; default 10m
	MaxAuthFailures    int           // per connection, then it is closed; default 3
	AuthFailureDelay   time.Duration // added before each 535; default 1s, doubling
	MaxMessagesPerConn int           // default 1000
}

// Config is a proxy's configuration. It is fixed for the life of a Server,
// except the certificate, which TLS.GetCertificate may change at any time.
type Config struct {
	Hostname  string // for the banner and EHLO
	Listeners []ListenerConfig
	TLS       *tls.Config // must have a certificate or GetCertificate; MinVersion is forced to TLS 1.2
	Limits    Limits
	// Bounces checks the recipients and takes the messages of the
	// bounces listeners; it must be set when there is one.
	Bounces BounceReceiver
}

// DefaultLimits returns the limits used for every zero field of Limits.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:    25 << 20,
		MaxRecipients:      100,
		MaxLineLength:      64 << 10,
		MaxConnections:     1000,
		MaxConnectionsIP:   50,
		CommandTimeout:     5 * time.Minute,
		DataTimeout:        10 * time.Minute,
		MaxAuthFailures:    3,
		AuthFailureDelay:   time.Second,
		MaxMessagesPerConn: 1000,
	}
}
