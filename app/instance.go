package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// instanceID returns this installation's stable worker id, kept in
// dataDir/instance-id. Job leases are taken under it, so after a crash the
// restarted process recognises the leases of its previous run as its own and
// releases them at once instead of waiting for them to expire. Two
// processes must never share a data directory.
func instanceID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "instance-id")
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("app: %w", err)
	}
	host, _ := os.Hostname()
	r := make([]byte, 6)
	if _, err := rand.Read(r); err != nil {
		return "", fmt.Errorf("app: %w", err)
	}
	id := fmt.Sprintf("%s-%s", host, hex.EncodeToString(r))
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("app: %w", err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("app: %w", err)
	}
	return id, nil
}
