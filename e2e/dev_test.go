package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// devPorts are fixed in the embedded dev policy.
var devPorts = []int{2587, 2465, 8025}

var (
	bannerPasswordRE = regexp.MustCompile(`(?m)^\s*user dev\s+password (\S+)\s+API key (\S+)\s*$`)
	bannerSwaksRE    = regexp.MustCompile(`(?m)^\s*(swaks .*)$`)
	bannerCurlRE     = regexp.MustCompile(`(?m)^\s*(curl .*)$`)
)

// TestDevDefault runs `smtpgate serve --data DIR` without a policy, as a new
// user would: the banner prints the dev password and a swaks line; that very
// line must deliver, and the printed curl line must read the mail back. A
// second start on the same data directory prints the same password.
func TestDevDefault(t *testing.T) {
	if os.Getenv("SMTPGATE_E2E_SKIP_DEV") == "1" {
		t.Skip("SMTPGATE_E2E_SKIP_DEV=1")
	}
	for _, p := range devPorts {
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			t.Fatalf("port %d, fixed in the dev policy, is busy (%v): stop what uses it, or set SMTPGATE_E2E_SKIP_DEV=1 to skip this test locally", p, err)
		}
		ln.Close()
	}
	swaks := requireSwaks(t)

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	in := launch(t, dir, "", dataDir, "serve", "--data", dataDir, "--log-level", "debug")
	banner := in.stdout.String()

	m := bannerPasswordRE.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner has no dev password line matching %s:\n%s", bannerPasswordRE, banner)
	}
	password, apiKey := m[1], m[2]
	var secrets struct {
		Password string `json:"password"`
		APIKey   string `json:"api_key"`
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, "dev-secrets.json")); err != nil {
		t.Errorf("dev secrets: %v", err)
	} else if err := json.Unmarshal(b, &secrets); err != nil {
		t.Errorf("dev-secrets.json: %v", err)
	} else if secrets.Password != password || secrets.APIKey != apiKey {
		t.Errorf("banner password/key %q/%q, dev-secrets.json has %q/%q", password, apiKey, secrets.Password, secrets.APIKey)
	}

	sm := bannerSwaksRE.FindStringSubmatch(banner)
	if sm == nil {
		t.Fatalf("banner has no swaks line:\n%s", banner)
	}
	args, err := shellSplit(sm[1])
	if err != nil {
		t.Fatalf("banner swaks line %q: %v", sm[1], err)
	}
	if !strings.Contains(sm[1], password) {
		t.Errorf("swaks line %q does not carry the dev password", sm[1])
	}
	if args[0] != "swaks" {
		t.Fatalf("banner swaks line %q does not start with swaks", sm[1])
	}
	out, code := runTool(t, 60*time.Second, swaks, args[1:]...)
	if code != swaksOK {
		t.Fatalf("the banner's swaks line exited %d:\n%s\n%s", code, sm[1], out)
	}
	qm := queuedRE.FindStringSubmatch(out)
	if qm == nil {
		t.Fatalf("swaks output has no queue id:\n%s", out)
	}

	cm := bannerCurlRE.FindStringSubmatch(banner)
	if cm == nil {
		t.Fatalf("banner has no curl line:\n%s", banner)
	}
	msgs := curlJSON(t, cm[1])
	var found bool
	for _, msg := range msgs {
		if msg.ID == qm[1] {
			found = true
			if msg.Via != "dev" || !msg.RTLS {
				t.Errorf("message %s: via %q rtls %v, want dev, true", msg.ID, msg.Via, msg.RTLS)
			}
		}
	}
	if !found {
		t.Fatalf("the banner's curl line does not list message %s: %+v", qm[1], msgs)
	}

	in.stop()
	if in.cmd.ProcessState == nil || !in.cmd.ProcessState.Success() {
		t.Errorf("smtpgate did not exit cleanly on SIGTERM: %v", in.waitErr)
	}
	again := launch(t, dir, "", dataDir, "serve", "--data", dataDir)
	m2 := bannerPasswordRE.FindStringSubmatch(again.stdout.String())
	if m2 == nil {
		t.Fatalf("second banner has no dev password line:\n%s", again.stdout)
	}
	if m2[1] != password || m2[2] != apiKey {
		t.Errorf("second start printed password/key %q/%q, first %q/%q", m2[1], m2[2], password, apiKey)
	}
	if msgs := curlJSON(t, cm[1]); len(msgs) == 0 {
		t.Errorf("captured mail gone after a restart")
	}
}

// curlJSON performs the banner's `curl -s -H 'Header: value' URL` with
// net/http and decodes the message list.
func curlJSON(t *testing.T, line string) []apiMessage {
	t.Helper()
	args, err := shellSplit(line)
	if err != nil {
		t.Fatalf("curl line %q: %v", line, err)
	}
	var target string
	header := http.Header{}
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-H" && i+1 < len(args):
			k, v, ok := strings.Cut(args[i+1], ":")
			if !ok {
				t.Fatalf("curl line %q: header %q", line, args[i+1])
			}
			header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
			i++
		case a == "-s":
		case strings.HasPrefix(a, "http://") || strings.HasPrefix(a, "https://"):
			target = a
		default:
			t.Fatalf("curl line %q: unexpected argument %q", line, a)
		}
	}
	if target == "" {
		t.Fatalf("curl line %q has no URL", line)
	}
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", line, resp.Status)
	}
	var msgs []apiMessage
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return msgs
}

// shellSplit splits a command line the way sh would for words, single and
// double quotes and backslashes (no expansions).
func shellSplit(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
		quote  rune
	)
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && strings.ContainsRune(`"\$`+"`", rune(s[i+1])):
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func TestShellSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`swaks --server localhost --auth-password 'a b-_c' --to x@y`, []string{"swaks", "--server", "localhost", "--auth-password", "a b-_c", "--to", "x@y"}},
		{`curl -s -H 'Mailsac-Key: k' http://h/p`, []string{"curl", "-s", "-H", "Mailsac-Key: k", "http://h/p"}},
		{`a "b \"c\" $d" e\ f ''`, []string{"a", `b "c" $d`, "e f", ""}},
	} {
		got, err := shellSplit(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("shellSplit(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := shellSplit(`a 'b`); err == nil {
		t.Errorf("unterminated quote accepted")
	}
}
