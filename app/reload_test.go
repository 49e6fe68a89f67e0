package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/smtpgate/smtpgate/policy"
)

const reloadPolicy = `
server {
  hostname = "app.test"
  mode     = "capture"
  data_dir = "%[1]s"
  listen "submission" {
    address = "%[3]s"
    tls     = "starttls"
  }
  http {
    address       = "127.0.0.1:0"
    open_networks = [%[4]s]
  }
}
credential "news" {
  password_hash = "%[2]s"
}
`

// TestReloadOpenNetworks: open_networks applies on reload (a client from
// loopback goes from 401 to 200 without a key), and a listener change,
// which needs a restart, is named in a warning.
func TestReloadOpenNetworks(t *testing.T) {
	dir := t.TempDir()
	hash, err := policy.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.hcl")
	write := func(listen, open string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(fmt.Sprintf(reloadPolicy, filepath.Join(dir, "data"), hash, listen, open)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("127.0.0.1:0", "")
	core, logs := observer.New(zap.InfoLevel)
	a, err := New(context.Background(), Options{PolicyPath: path, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	status := func() int {
		t.Helper()
		resp, err := http.Get("http://" + a.HTTPAddr().String() + "/api/addresses/x@example.org/messages")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != http.StatusUnauthorized {
		t.Fatalf("without open networks and without a key: %d, want 401", got)
	}

	write("127.0.0.1:1", `"127.0.0.0/8", "::1/128"`)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != http.StatusOK {
		t.Errorf("loopback open after the reload, without a key: %d, want 200", got)
	}
	warned := logs.FilterMessageSnippet("only after a restart").All()
	if len(warned) != 1 {
		t.Fatalf("%d restart warnings, want 1: %v", len(warned), logs.All())
	}
	if got := warned[0].ContextMap()["settings"]; fmt.Sprint(got) != "[listeners]" {
		t.Errorf("restart warning names %v, want [listeners]", got)
	}

	write("127.0.0.1:1", "")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != http.StatusUnauthorized {
		t.Errorf("open networks removed by a reload: %d, want 401", got)
	}
}
