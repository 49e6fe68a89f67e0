package app

import (
	"fmt"
	"io"
	"net"
	"strings"
)

// writeBanner prints where smtpgate listens and, for the dev policy, the
// dev login with commands ready to paste.
func (a *App) writeBanner(w io.Writer) {
	pol := a.Policy()
	fmt.Fprintf(w, "smtpgate is running (mode %s, store %s)\n", pol.Server.Mode, storeDesc(pol.Server.Store.Driver, pol.Server.Store.Path, pol.Server.DataDir))
	var submission string
	for _, l := range pol.Server.Listeners {
		addr := hostPort(a.SMTPAddr(l.Name))
		what := "STARTTLS required"
		if l.TLS == "implicit" {
			what = "implicit TLS"
		} else if submission == "" {
			submission = addr
		}
		fmt.Fprintf(w, "  SMTP %-11s %s (%s)\n", l.Name, addr, what)
	}
	api := ""
	if h := a.HTTPAddr(); h != nil {
		api = "http://" + hostPort(h)
		fmt.Fprintf(w, "  HTTP            %s", api)
		if pol.Server.HTTP.UI {
			fmt.Fprintf(w, "  (web UI at %s/, JSON API under /api/v1 and Mailsac's /api)", api)
		}
		fmt.Fprintln(w)
	}
	if a.dev == nil {
		return
	}
	host, port, _ := net.SplitHostPort(submission)
	fmt.Fprintf(w, "\nDev login (capture mode: nothing is ever delivered)\n")
	fmt.Fprintf(w, "  user dev   password %s   API key %s\n", a.dev.Password, a.dev.APIKey)
	fmt.Fprintf(w, "\nSend a test mail:\n  swaks --server %s --port %s --tls --auth PLAIN --auth-user dev --auth-password '%s' --from app@example.com --to alice@example.com\n",
		host, port, a.dev.Password)
	if api != "" {
		fmt.Fprintf(w, "Read it back:\n  curl -s -H 'Mailsac-Key: %s' %s/api/addresses/alice@example.com/messages\n", a.dev.APIKey, api)
	}
	fmt.Fprintf(w, "Try a feature: the dev login may switch any of them on with a header, e.g. add\n"+
		"  --add-header 'X-Smtpgate-TrackClicks: yes' --add-header 'X-Smtpgate-InlineCSS: yes' --attach-type text/html --attach-body '<style>p{color:red}</style><p>Hi <a href=\"https://example.com\">link</a></p>'\n"+
		"  (tracked links point at %s; explain a message with: smtpgate check --explain POLICY --login L --message FILE)\n", api)
	fmt.Fprintln(w)
}

func storeDesc(driver, path, dataDir string) string {
	if driver == "" {
		driver = "sqlite"
	}
	if driver == "sqlite" {
		if path == "" {
			path = dataDir
		}
		return "sqlite at " + path
	}
	return driver
}

// hostPort renders a bound address for humans: the unspecified address
// becomes localhost.
func hostPort(a net.Addr) string {
	if a == nil {
		return "-"
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}
