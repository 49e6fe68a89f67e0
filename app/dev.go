package app

import (
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/smtpgate/smtpgate/policy"
)

//go:embed dev.hcl
var devPolicy []byte

// DevSecrets are the generated secrets of the embedded dev policy. They are
// made on first start and kept in the data directory, so the dev login stays
// the same across restarts.
type DevSecrets struct {
	Password       string `json:"password"`
	PasswordHash   string `json:"password_hash"`
	APIKey         string `json:"api_key"`
	TrackingSecret string `json:"tracking_secret"`
}

// DevAddrs are the addresses of the embedded dev policy.
type DevAddrs struct {
	Hostname   string
	Submission string // STARTTLS
	SMTPS      string // implicit TLS
	HTTP       string
	PublicURL  string // tracking links and API base; derived from HTTP when empty
}

// DefaultDevAddrs are the ports `make run` uses.
var DefaultDevAddrs = DevAddrs{Hostname: "localhost", Submission: ":2587", SMTPS: ":2465", HTTP: ":8025"}

func loadDevSecrets(dataDir string) (*DevSecrets, error) {
	path := filepath.Join(dataDir, "dev-secrets.json")
	b, err := os.ReadFile(path)
	if err == nil {
		var s DevSecrets
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("app: %s: %w", path, err)
		}
		if s.Password != "" && s.PasswordHash != "" && s.APIKey != "" && s.TrackingSecret != "" {
			if !strings.HasPrefix(s.Password, "-") {
				return &s, nil
			}
			// Kept from a version that drew passwords from base64url: one
			// that starts with '-' breaks the banner's swaks line (an
			// option to swaks). Only the password is replaced.
			return saveDevPassword(path, &s)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("app: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return saveDevPassword(path, &DevSecrets{APIKey: randomToken(24), TrackingSecret: randomToken(32)})
}

// saveDevPassword gives s a new password and writes s to path.
func saveDevPassword(path string, s *DevSecrets) (*DevSecrets, error) {
	var err error
	s.Password = randomToken(12)
	if s.PasswordHash, err = policy.HashPassword(s.Password); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return s, nil
}

// devEnv is the environment the embedded policy is evaluated in.
func devEnv(dataDir string, a DevAddrs, s *DevSecrets) func(string) (string, bool) {
	public := a.PublicURL
	if public == "" {
		host, port, err := net.SplitHostPort(a.HTTP)
		if err != nil {
			port = "8025"
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		public = "http://" + net.JoinHostPort(host, port)
	}
	vals := map[string]string{
		"SMTPGATE_HOSTNAME":            a.Hostname,
		"SMTPGATE_DATA":                dataDir,
		"SMTPGATE_SUBMISSION_ADDR":     a.Submission,
		"SMTPGATE_SMTPS_ADDR":          a.SMTPS,
		"SMTPGATE_HTTP_ADDR":           a.HTTP,
		"SMTPGATE_PUBLIC_URL":          public,
		"SMTPGATE_DEV_PASSWORD_HASH":   s.PasswordHash,
		"SMTPGATE_DEV_API_KEY":         s.APIKey,
		"SMTPGATE_DEV_TRACKING_SECRET": s.TrackingSecret,
	}
	return func(k string) (string, bool) { v, ok := vals[k]; return v, ok }
}

// randomToken returns a random string of letters and digits, as long as
// the base64 form of n random bytes (5.95 bits a character). Only letters
// and digits, so that a password or key pasted into a shell command (the
// banner's swaks and curl lines) can never start with '-' and be read as an
// option.
func randomToken(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	size := (n*8 + 5) / 6 // as many characters as base64 would use
	out := make([]byte, 0, size)
	var b [64]byte
	for len(out) < size {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		for _, c := range b {
			// 62 letters and digits; reject 248..255 so each is equally likely.
			if c < 248 && len(out) < size {
				out = append(out, alphabet[c%62])
			}
		}
	}
	return string(out)
}
