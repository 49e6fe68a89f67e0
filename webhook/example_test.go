package webhook_test

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/smtpgate/smtpgate/webhook"
)

// A receiver checks the signature over the raw body before it trusts the
// payload, and remembers delivery ids (for longer than the tolerance) to
// drop replays and retries it already processed.
func ExampleVerify() {
	secret := []byte("the webhook's secret from the policy")
	var mu sync.Mutex
	seen := map[string]bool{} // a real receiver keeps these in its database
	http.HandleFunc("/smtpgate", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read error", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(webhook.HeaderDelivery)
		mu.Lock()
		defer mu.Unlock()
		if seen[id] {
			return // 200: already processed
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		log.Printf("%s: %s for %s (message %s, seq %d)", p.Timestamp.Format(time.RFC3339), p.Event, p.Recipient, p.MessageID, p.Seq)
		seen[id] = true
	})
}
