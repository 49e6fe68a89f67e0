package webhook

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

var update = flag.Bool("update", false, "rewrite the golden payloads in testdata/payload")

func TestPayloadGolden(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		id   int64
		ev   store.Event
		info Info
	}{
		{"sent", 8812, store.Event{Seq: 40211, MessageID: "01JGZ3V7Q2", Login: "webapp", Type: store.EventSent,
			Recipient: "ann@example.org", Time: at, Reply: "250 2.0.0 Ok: queued as 4Xk", Detail: "mx.example.org:25"},
			Info{MessageIDHeader: "<a1@app.example>", Subject: "Welcome, Ann", Tags: []string{"signup", "eu"},
				Metadata: map[string]string{"user": "42", "plan": "pro"}}},
		{"clicked", 9, store.Event{Seq: 7, MessageID: "01JGZ3V7Q3", Login: "news", Type: store.EventClicked,
			Recipient: "bob@example.net", Time: at, IP: "2001:db8::1", UserAgent: "Mozilla/5.0", URL: "https://shop.example/?a=1&b=<2>"},
			Info{}},
		{"bounced_no_message", 10, store.Event{Seq: 8, MessageID: "01JGZ3V7Q4", Login: "app1", Type: store.EventBounced,
			Recipient: "gone@example.com", Time: at, Reply: "550 5.1.1 <gone@example.com>: user unknown"},
			Info{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewPayload(tc.id, "events", &tc.ev, tc.info).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", "payload", tc.name+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("payload differs from %s:\n%s", path, pretty.Bytes())
			}
			var back Payload
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if back.Seq != tc.ev.Seq || !back.Timestamp.Equal(tc.ev.Time) || back.Timestamp.Location() != time.UTC {
				t.Errorf("decoded seq %d time %v, want %d %v in UTC", back.Seq, back.Timestamp, tc.ev.Seq, tc.ev.Time)
			}
			if back.Tags == nil || back.Metadata == nil {
				t.Errorf("tags %v metadata %v: want [] and {} rather than null", back.Tags, back.Metadata)
			}
		})
	}
}
