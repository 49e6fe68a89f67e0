// Package policy loads and checks smtpgate's HCL policy file, and answers the
// questions the SMTP path asks of it: who is this login (Authenticate), what
// happens to its mail (Resolve), what may an API key read (APIKeyScope).
//
// A policy is parsed once (Load or Parse) into an immutable Policy; every
// mistake in the file is reported as a diagnostic with file:line:col. A reload
// builds a new Policy. After loading, a Policy does no I/O.
//
// Expressions may call env("NAME") (an error if NAME is unset), file("path")
// and trimspace(s). Relative paths in the file (file("..."), tls, data_dir,
// store.path, dkim.key_file, relay.ca_file) are relative to the directory of
// the policy file.
// Sizes are strings with a unit of B, KB, MB or GB, where 1 KB is 1024 bytes,
// or a plain number of bytes; durations are Go durations such as "90s", "5m"
// or "1h30m", with d for days of 24 hours as well: "5d", "1d12h".
// Things that work but should be fixed, such as a secret shorter than 16
// bytes, are warnings (Policy.Warnings), not errors.
package policy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sync/singleflight"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/store"
)

// Values of server.mode.
const (
	ModeRelay   = "relay"   // mail goes where each credential's route says
	ModeCapture = "capture" // every credential is capture-only
)

// RouteCapture is the route of a message that is stored, never delivered.
const RouteCapture = store.RouteCapture

// Values of a listener's tls and a relay's tls.
const (
	TLSStartTLS = "starttls" // plaintext greeting, then STARTTLS (mandatory on listeners)
	TLSImplicit = "implicit" // TLS from the first byte
	TLSNone     = "none"     // relays only: no TLS at all (a local test relay)
)

// Values of a listener's purpose.
const (
	PurposeSubmission = "submission" // apps log in and submit mail
	PurposeBounces    = "bounces"    // other mail servers deliver DSNs to VERP addresses
)

// Values of an mx relay's starttls.
const (
	StartTLSOpportunistic = "opportunistic" // TLS when the MX host offers it, plain text otherwise
	StartTLSRequire       = "require"       // no delivery without TLS
)

// Values of store.driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Values of directives.on_error.
const (
	OnErrorIgnore = "ignore" // a malformed directive header is stripped and ignored
	OnErrorReject = "reject" // a malformed directive header rejects the message
)

// Defaults of the policy file.
const (
	DefaultMaxMessageSize = 25 << 20
	DefaultMaxRecipients  = 100
	DefaultDataDir        = "./data"
	DefaultHTTPAddress    = ":8025"

	DefaultRelayMaxAge               = 5 * 24 * time.Hour // relay.max_age
	DefaultRelayConcurrency          = 20                 // relay.concurrency
	DefaultRelayPerDomainConcurrency = 5                  // relay.per_domain_concurrency
	DefaultMXPort                    = 25                 // relay.port, with mx = true

	DefaultMaxScheduleAhead = 30 * 24 * time.Hour // server.max_schedule_ahead
	DefaultWebhookMaxAge    = 24 * time.Hour      // webhook.max_age
)

// ErrBadCredentials is returned by Authenticate for an unknown user name or a
// wrong password.
var ErrBadCredentials = errors.New("policy: bad credentials")

// Options tune Load and Parse.
type Options struct {
	// LookupEnv resolves env("NAME") in the policy; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Policy is a loaded, checked policy file. It is safe for concurrent use;
// callers must not modify it.
type Policy struct {
	Server     Server
	Directives Directives
	Tracking   Tracking
	// Features are the named features blocks.
	Features map[string]features.Set
	// Credentials are the SMTP logins by name (the credential label).
	Credentials map[string]*Credential
	// APIKeys are the keys of the HTTP API, in file order.
	APIKeys []APIKey
	// Relays and Webhooks by name.
	Relays   map[string]*Relay
	Webhooks map[string]*Webhook
	// DKIM are the signing keys by lower-case domain, in file order: a
	// domain with more than one key (each with its own selector) signs
	// with each of them, such as RSA and Ed25519 for dual signing.
	DKIM map[string][]*DKIM
	// Warnings are the diagnostics of things that work but should be
	// fixed, such as a short secret; each formats as file:line:col.
	Warnings hcl.Diagnostics

	auth     *authCache
	inflight singleflight.Group // concurrent verifications of one (user, password) share one hash
	dummy    *parsedHash        // verified for unknown users
	verified atomic.Int64       // real hash verifications, for tests
	now      func() time.Time
}

// Server is the server block.
type Server struct {
	Hostname       string    // default os.Hostname()
	Mode           string    // ModeRelay (default) or ModeCapture
	DataDir        string    // default "./data", relative to the policy file
	MaxMessageSize int64     // bytes; default 25 MiB
	MaxRecipients  int       // default 100
	TLS            *TLSFiles // nil: the application makes a self-signed certificate in DataDir
	Listeners      []Listener
	HTTP           HTTP
	Store          Store
	Limits         Limits
	// MaxScheduleAhead is how far in the future a message's send-at may
	// be; a message scheduled later is refused. Default
	// DefaultMaxScheduleAhead.
	MaxScheduleAhead time.Duration
	// CaptureSimulateSent says to add, for every captured message (capture
	// mode, or route "capture"), a simulated "sent" event per recipient
	// after the "captured" one, so that an app sees the events of a
	// delivery in staging. Default false.
	CaptureSimulateSent bool
	// Retention is the server's retention block: the retention of every
	// credential without a retention block of its own. Zero when absent.
	Retention Retention
}

// Retention bounds the captured mail kept for a login (a retention block);
// the store deletes what is beyond either bound (see store.Retention).
type Retention struct {
	MaxMessages int           // keep the newest MaxMessages messages; 0 = no bound
	MaxAge      time.Duration // delete messages older than MaxAge; 0 = no bound
}

// TLSFiles are a PEM certificate chain and its key.
type TLSFiles struct {
	CertFile, KeyFile string
}

// Listener is one SMTP listener (a listen block).
type Listener struct {
	Name    string
	Address string // host:port
	// TLS is TLSStartTLS (the default) or TLSImplicit. On a submission
	// listener STARTTLS is mandatory before AUTH and mail. On a bounces
	// listener STARTTLS is offered but optional, since mail servers that
	// return DSNs fall back to plain text; TLSImplicit is refused there.
	TLS           string
	ProxyProtocol bool
	// Purpose is PurposeSubmission (the default: apps log in over TLS and
	// submit mail) or PurposeBounces (other mail servers, without AUTH,
	// deliver DSNs to the VERP addresses of tracking.bounce_domain, which
	// a bounces listener needs).
	Purpose string
}

// HTTP is the web server of the capture UI, the API and the tracking links.
type HTTP struct {
	Address   string // default ":8025"
	PublicURL string // how the world reaches it; "" if not set
	// UI says whether the web UI is served; default true. The API and
	// the tracking links are served either way.
	UI bool
	// OpenNetworks are the client networks from which the web UI and the
	// capture API need no key and show the mail of every login; nil, the
	// default, is none. IPv4-mapped IPv6 networks are given as IPv4.
	OpenNetworks []*net.IPNet
}

// IsOpen reports whether a client at ip is in one of the OpenNetworks.
func (h *HTTP) IsOpen(ip net.IP) bool {
	for _, n := range h.OpenNetworks {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// Store is where messages are kept.
type Store struct {
	Driver string // DriverSQLite (default) or DriverPostgres
	Path   string // sqlite: a directory; default the data directory
	DSN    string // postgres: the connection string
}

// Limits bound what SMTP clients may do. Every field is filled in (with the
// default when absent from the file).
type Limits struct {
	MaxConnections      int           // default 1000
	MaxConnectionsPerIP int           // default 50
	MaxAuthFailures     int           // per connection; default 3
	CommandTimeout      time.Duration // default 5m
	DataTimeout         time.Duration // default 10m
}

// Directives configures header directives.
type Directives struct {
	Prefixes []string // header name prefixes; default X-Smtpgate- and X-Smtpeter-
	Vendors  []string // vendor header families honoured: mailgun, postmark, emailengine, sendgrid
	OnError  string   // OnErrorIgnore (default) or OnErrorReject
}

// Tracking configures click, open and bounce tracking. A credential whose
// features turn on a tracking feature needs Secret, and PublicURL (clicks,
// opens) or BounceDomain (bounces); one that may only turn it on with a
// header needs Secret.
type Tracking struct {
	Secret       string // HMAC key of tracking tokens
	PublicURL    string // base of tracking links; default server.http.public_url
	BounceDomain string // domain of VERP bounce addresses
}

// Credential is one SMTP login.
type Credential struct {
	Label        string
	PasswordHash string
	FeaturesName string       // "" when no features block is named: all features off
	Features     features.Set // the named block's features
	// Overridable are the feature names a header directive may flip, with
	// "*" expanded to features.AllNames.
	Overridable []string
	// AllowFrom are the sender patterns, in lower case; nil means any sender.
	AllowFrom []string
	Route     string // RouteCapture (default) or a relay name
	// DKIMDomain, if not "", is the domain (lower case) of the dkim
	// blocks whose keys sign this login's mail, whatever its From domain.
	// "" signs with the keys of the From domain, if there are any.
	DKIMDomain string
	// Retention is the credential's retention block, whole, or else
	// server.retention: a credential's block replaces the server's, so
	// a bound it leaves out is no bound (retention {} keeps everything).
	Retention Retention

	hash *parsedHash
}

// APIKey is a key of the HTTP API and the logins whose mail it may read.
type APIKey struct {
	Name   string
	Logins []string // nil when All
	All    bool     // logins = ["*"]

	sum [32]byte // SHA-256 of the key
}

// Relay is an upstream: a smarthost, or direct delivery to MX hosts. Every
// field is filled in, with the default when absent from the file.
type Relay struct {
	Name     string
	MX       bool   // deliver to the recipients' MX hosts; Address is then ""
	Address  string // host:port of a smarthost
	TLS      string // smarthost: TLSStartTLS (default), TLSImplicit or TLSNone; "" with MX
	Username string
	Password string
	// StartTLS is, with MX, StartTLSOpportunistic (the default) or
	// StartTLSRequire; "" for a smarthost.
	StartTLS string
	// Port is the SMTP port of the MX hosts, DefaultMXPort unless the file
	// says otherwise (tests point MX hosts at a loopback port); 0 for a
	// smarthost, whose port is in Address.
	Port int
	// VerifyTLS says to check the peer's certificate (chain and host name).
	// verify_tls defaults to true; it can be true only for a smarthost with
	// TLS, or with MX and StartTLSRequire. Opportunistic STARTTLS never
	// checks: it would deliver in plain text anyway.
	VerifyTLS bool
	// CAFile is a PEM bundle of CAs trusted besides the system's when
	// checking the certificate, resolved against the policy file's
	// directory (the application reads it); "" for none. Only with VerifyTLS.
	CAFile string
	// Helo is the name sent in EHLO; default server.hostname.
	Helo string
	// MaxAge is how long a message is retried before it fails; default
	// DefaultRelayMaxAge.
	MaxAge time.Duration
	// Concurrency bounds the simultaneous SMTP connections of this relay:
	// 1 to 1000, default DefaultRelayConcurrency.
	Concurrency int
	// PerDomainConcurrency bounds the simultaneous connections for one
	// recipient domain: 1 to Concurrency, default
	// DefaultRelayPerDomainConcurrency (or Concurrency, if smaller).
	PerDomainConcurrency int
	// RatePerMinute bounds the messages per minute to one recipient
	// domain; 0, the default, is no bound.
	RatePerMinute int
}

// DKIM is a DKIM signing key for a domain (a dkim block).
type DKIM struct {
	Domain    string // lower case
	Selector  string
	Algorithm string // "rsa" (default) or "ed25519"
	KeyFile   string // resolved against the policy file's directory
}

// Webhook is an endpoint that receives signed events.
type Webhook struct {
	Name   string
	URL    string // http or https
	Secret string
	// Events are the event types sent, in file order: store.EventQueued,
	// EventCaptured, EventSent, EventDeferred, EventBounced, EventFailed,
	// EventOpened, EventClicked or EventDirective; "*" in the file is all
	// of them. "accepted" is an old name of "queued".
	Events []string
	// Logins are the logins whose events are sent; nil (logins left out,
	// or ["*"]) is every login.
	Logins []string
	// MaxAge is how long a delivery is retried; default DefaultWebhookMaxAge.
	MaxAge time.Duration
}

// Wants reports whether the webhook gets events of type event about the
// mail of login.
func (w *Webhook) Wants(login, event string) bool {
	return slices.Contains(w.Events, event) && (w.Logins == nil || slices.Contains(w.Logins, login))
}

// Error is the error of a policy that does not load: its diagnostics.
type Error struct {
	Diags hcl.Diagnostics
	files map[string]*hcl.File
}

// Error returns every error diagnostic, one per line, as
// "file:line:col: summary: detail".
func (e *Error) Error() string {
	var b strings.Builder
	for _, d := range e.Diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(formatDiag(d))
	}
	if b.Len() == 0 {
		return "policy: invalid"
	}
	return b.String()
}

// WriteText writes the diagnostics for a person: each with the lines of the
// policy it is about, wrapped at width columns, in colour if color is set.
func (e *Error) WriteText(w io.Writer, width uint, color bool) error {
	if err := hcl.NewDiagnosticTextWriter(w, e.files, width, color).WriteDiagnostics(e.Diags); err != nil {
		return fmt.Errorf("policy: writing diagnostics: %w", err)
	}
	return nil
}

// formatDiag formats one diagnostic as "file:line:col: summary: detail".
func formatDiag(d *hcl.Diagnostic) string {
	var b strings.Builder
	if d.Subject != nil {
		fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(strings.Join(strings.Fields(d.Detail), " "))
	}
	return b.String()
}

// Load reads and parses the policy file at path. An invalid policy gives a
// *Error; a file that cannot be read gives the error of the read.
func Load(path string, opts Options) (*Policy, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, src, opts)
}

// Parse parses a policy held in memory; filename names it in diagnostics, and
// file() and other relative paths are relative to its directory. An invalid
// policy gives a *Error.
func Parse(filename string, src []byte, opts Options) (*Policy, error) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	p, diags, files := parse(filename, src, lookup)
	if diags.HasErrors() {
		return nil, &Error{Diags: diags, files: files}
	}
	return p, nil
}

// sortDiags orders diagnostics by position, so that output is stable.
func sortDiags(diags hcl.Diagnostics) {
	key := func(d *hcl.Diagnostic) (string, int) {
		if d.Subject == nil {
			return "", -1
		}
		return d.Subject.Filename, d.Subject.Start.Byte
	}
	sort.SliceStable(diags, func(i, j int) bool {
		fi, bi := key(diags[i])
		fj, bj := key(diags[j])
		if fi != fj {
			return fi < fj
		}
		return bi < bj
	})
}

// loginNames returns the credential names, sorted.
func (p *Policy) loginNames() []string {
	names := make([]string, 0, len(p.Credentials))
	for n := range p.Credentials {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
