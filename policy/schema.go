package policy

import "github.com/hashicorp/hcl/v2"

// The raw* types are the policy file as gohcl decodes it. Optional scalars are
// plain values whose presence shows in their *Range field (the zero Range
// when absent); lists are kept as expressions so that a diagnostic can point
// at the one bad element.

type rawFile struct {
	Server      rawServer       `hcl:"server,block"`
	Directives  *rawDirectives  `hcl:"directives,block"`
	Tracking    *rawTracking    `hcl:"tracking,block"`
	Features    []rawFeatures   `hcl:"features,block"`
	Credentials []rawCredential `hcl:"credential,block"`
	APIKeys     []rawAPIKey     `hcl:"api_key,block"`
	Relays      []rawRelay      `hcl:"relay,block"`
	DKIM        []rawDKIM       `hcl:"dkim,block"`
	Webhooks    []rawWebhook    `hcl:"webhook,block"`
}

type rawServer struct {
	Hostname            string    `hcl:"hostname,optional"`
	HostnameRange       hcl.Range `hcl:"hostname,attr_value_range"`
	Mode                string    `hcl:"mode,optional"`
	ModeRange           hcl.Range `hcl:"mode,attr_value_range"`
	MaxMessageSize      string    `hcl:"max_message_size,optional"`
	MaxMessageSizeRange hcl.Range `hcl:"max_message_size,attr_value_range"`
	MaxRecipients       int       `hcl:"max_recipients,optional"`
	MaxRecipientsRange  hcl.Range `hcl:"max_recipients,attr_value_range"`
	DataDir             string    `hcl:"data_dir,optional"`
	DataDirRange        hcl.Range `hcl:"data_dir,attr_value_range"`

	MaxScheduleAhead      string        `hcl:"max_schedule_ahead,optional"`
	MaxScheduleAheadRange hcl.Range     `hcl:"max_schedule_ahead,attr_value_range"`
	CaptureSimulateSent   bool          `hcl:"capture_simulate_sent,optional"`
	Retention             *rawRetention `hcl:"retention,block"`

	TLS       *rawTLS       `hcl:"tls,block"`
	Listeners []rawListener `hcl:"listen,block"`
	HTTP      *rawHTTP      `hcl:"http,block"`
	Store     *rawStore     `hcl:"store,block"`
	Limits    *rawLimits    `hcl:"limits,block"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawTLS struct {
	CertFile      string    `hcl:"cert_file"`
	CertFileRange hcl.Range `hcl:"cert_file,attr_value_range"`
	KeyFile       string    `hcl:"key_file"`
	KeyFileRange  hcl.Range `hcl:"key_file,attr_value_range"`
}

type rawListener struct {
	Name          string    `hcl:"name,label"`
	NameRange     hcl.Range `hcl:"name,label_range"`
	Address       string    `hcl:"address"`
	AddressRange  hcl.Range `hcl:"address,attr_value_range"`
	TLS           string    `hcl:"tls,optional"`
	TLSRange      hcl.Range `hcl:"tls,attr_value_range"`
	ProxyProtocol bool      `hcl:"proxy_protocol,optional"`
	Purpose       string    `hcl:"purpose,optional"`
	PurposeRange  hcl.Range `hcl:"purpose,attr_value_range"`
}

type rawHTTP struct {
	Address        string         `hcl:"address,optional"`
	AddressRange   hcl.Range      `hcl:"address,attr_value_range"`
	PublicURL      string         `hcl:"public_url,optional"`
	PublicURLRange hcl.Range      `hcl:"public_url,attr_value_range"`
	UI             bool           `hcl:"ui,optional"`
	UIRange        hcl.Range      `hcl:"ui,attr_value_range"`
	OpenNetworks   hcl.Expression `hcl:"open_networks,optional"`
}

type rawStore struct {
	Driver      string    `hcl:"driver,optional"`
	DriverRange hcl.Range `hcl:"driver,attr_value_range"`
	Path        string    `hcl:"path,optional"`
	PathRange   hcl.Range `hcl:"path,attr_value_range"`
	DSN         string    `hcl:"dsn,optional"`
	DSNRange    hcl.Range `hcl:"dsn,attr_value_range"`
	DefRange    hcl.Range `hcl:",def_range"`
}

type rawLimits struct {
	MaxConnections           int       `hcl:"max_connections,optional"`
	MaxConnectionsRange      hcl.Range `hcl:"max_connections,attr_value_range"`
	MaxConnectionsPerIP      int       `hcl:"max_connections_per_ip,optional"`
	MaxConnectionsPerIPRange hcl.Range `hcl:"max_connections_per_ip,attr_value_range"`
	CommandTimeout           string    `hcl:"command_timeout,optional"`
	CommandTimeoutRange      hcl.Range `hcl:"command_timeout,attr_value_range"`
	DataTimeout              string    `hcl:"data_timeout,optional"`
	DataTimeoutRange         hcl.Range `hcl:"data_timeout,attr_value_range"`
	MaxAuthFailures          int       `hcl:"max_auth_failures,optional"`
	MaxAuthFailuresRange     hcl.Range `hcl:"max_auth_failures,attr_value_range"`
}

type rawRetention struct {
	MaxMessages      int       `hcl:"max_messages,optional"`
	MaxMessagesRange hcl.Range `hcl:"max_messages,attr_value_range"`
	MaxAge           string    `hcl:"max_age,optional"`
	MaxAgeRange      hcl.Range `hcl:"max_age,attr_value_range"`
}

type rawDirectives struct {
	Prefixes     hcl.Expression `hcl:"prefixes,optional"`
	Vendors      hcl.Expression `hcl:"vendors,optional"`
	OnError      string         `hcl:"on_error,optional"`
	OnErrorRange hcl.Range      `hcl:"on_error,attr_value_range"`
}

type rawTracking struct {
	Secret            string    `hcl:"secret,optional"`
	SecretRange       hcl.Range `hcl:"secret,attr_value_range"`
	PublicURL         string    `hcl:"public_url,optional"`
	PublicURLRange    hcl.Range `hcl:"public_url,attr_value_range"`
	BounceDomain      string    `hcl:"bounce_domain,optional"`
	BounceDomainRange hcl.Range `hcl:"bounce_domain,attr_value_range"`
	DefRange          hcl.Range `hcl:",def_range"`
}

type rawFeatures struct {
	Name           string    `hcl:"name,label"`
	NameRange      hcl.Range `hcl:"name,label_range"`
	InlineCSS      bool      `hcl:"inline_css,optional"`
	TrackClicks    bool      `hcl:"track_clicks,optional"`
	TrackTextLinks bool      `hcl:"track_text_links,optional"`
	TrackOpens     bool      `hcl:"track_opens,optional"`
	TrackBounces   bool      `hcl:"track_bounces,optional"`
	PreventScam    bool      `hcl:"preventscam,optional"`
}

type rawCredential struct {
	Label             string         `hcl:"label,label"`
	LabelRange        hcl.Range      `hcl:"label,label_range"`
	PasswordHash      string         `hcl:"password_hash"`
	PasswordHashRange hcl.Range      `hcl:"password_hash,attr_value_range"`
	Features          string         `hcl:"features,optional"`
	FeaturesRange     hcl.Range      `hcl:"features,attr_value_range"`
	Overridable       hcl.Expression `hcl:"overridable,optional"`
	AllowFrom         hcl.Expression `hcl:"allow_from,optional"`
	Route             string         `hcl:"route,optional"`
	RouteRange        hcl.Range      `hcl:"route,attr_value_range"`
	DKIMDomain        string         `hcl:"dkim_domain,optional"`
	DKIMDomainRange   hcl.Range      `hcl:"dkim_domain,attr_value_range"`
	Retention         *rawRetention  `hcl:"retention,block"`
	DefRange          hcl.Range      `hcl:",def_range"`
}

type rawAPIKey struct {
	Name      string         `hcl:"name,label"`
	NameRange hcl.Range      `hcl:"name,label_range"`
	Key       string         `hcl:"key"`
	KeyRange  hcl.Range      `hcl:"key,attr_value_range"`
	Logins    hcl.Expression `hcl:"logins"`
}

type rawRelay struct {
	Name          string    `hcl:"name,label"`
	NameRange     hcl.Range `hcl:"name,label_range"`
	MX            bool      `hcl:"mx,optional"`
	MXRange       hcl.Range `hcl:"mx,attr_value_range"`
	Address       string    `hcl:"address,optional"`
	AddressRange  hcl.Range `hcl:"address,attr_value_range"`
	TLS           string    `hcl:"tls,optional"`
	TLSRange      hcl.Range `hcl:"tls,attr_value_range"`
	Username      string    `hcl:"username,optional"`
	UsernameRange hcl.Range `hcl:"username,attr_value_range"`
	Password      string    `hcl:"password,optional"`
	PasswordRange hcl.Range `hcl:"password,attr_value_range"`

	StartTLS                  string    `hcl:"starttls,optional"`
	StartTLSRange             hcl.Range `hcl:"starttls,attr_value_range"`
	Port                      int       `hcl:"port,optional"`
	PortRange                 hcl.Range `hcl:"port,attr_value_range"`
	VerifyTLS                 bool      `hcl:"verify_tls,optional"`
	VerifyTLSRange            hcl.Range `hcl:"verify_tls,attr_value_range"`
	CAFile                    string    `hcl:"ca_file,optional"`
	CAFileRange               hcl.Range `hcl:"ca_file,attr_value_range"`
	Helo                      string    `hcl:"helo,optional"`
	HeloRange                 hcl.Range `hcl:"helo,attr_value_range"`
	MaxAge                    string    `hcl:"max_age,optional"`
	MaxAgeRange               hcl.Range `hcl:"max_age,attr_value_range"`
	Concurrency               int       `hcl:"concurrency,optional"`
	ConcurrencyRange          hcl.Range `hcl:"concurrency,attr_value_range"`
	PerDomainConcurrency      int       `hcl:"per_domain_concurrency,optional"`
	PerDomainConcurrencyRange hcl.Range `hcl:"per_domain_concurrency,attr_value_range"`
	RatePerMinute             int       `hcl:"rate_per_minute,optional"`
	RatePerMinuteRange        hcl.Range `hcl:"rate_per_minute,attr_value_range"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawDKIM struct {
	Domain         string    `hcl:"domain,label"`
	DomainRange    hcl.Range `hcl:"domain,label_range"`
	Selector       string    `hcl:"selector"`
	SelectorRange  hcl.Range `hcl:"selector,attr_value_range"`
	Algorithm      string    `hcl:"algorithm,optional"`
	AlgorithmRange hcl.Range `hcl:"algorithm,attr_value_range"`
	KeyFile        string    `hcl:"key_file"`
	KeyFileRange   hcl.Range `hcl:"key_file,attr_value_range"`
}

type rawWebhook struct {
	Name        string         `hcl:"name,label"`
	NameRange   hcl.Range      `hcl:"name,label_range"`
	URL         string         `hcl:"url"`
	URLRange    hcl.Range      `hcl:"url,attr_value_range"`
	Secret      string         `hcl:"secret"`
	SecretRange hcl.Range      `hcl:"secret,attr_value_range"`
	Events      hcl.Expression `hcl:"events"`
	Logins      hcl.Expression `hcl:"logins,optional"`
	MaxAge      string         `hcl:"max_age,optional"`
	MaxAgeRange hcl.Range      `hcl:"max_age,attr_value_range"`
}
