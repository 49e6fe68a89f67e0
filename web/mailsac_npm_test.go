package web

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// npmCommand is what CI runs before the tests so that TestMailsacNPMClient
// can use the official client.
const npmCommand = "npm ci --prefix web/testdata/mailsac-js"

// TestMailsacNPMClient drives smtpgate with the official Mailsac client,
// @mailsac/api (web/testdata/mailsac-js/script.js), over a real socket.
func TestMailsacNPMClient(t *testing.T) {
	dir := filepath.Join("testdata", "mailsac-js")
	unavailable := func(why string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; CI must run %q before the tests", why, npmCommand)
		}
		t.Skipf("%s; run %q to enable this test", why, npmCommand)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@mailsac", "api", "package.json")); err != nil {
		unavailable("the @mailsac/api package is not installed")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable("node is not on PATH")
	}

	f := newFixture(t, nil)
	const inbox = "js-client@example.com"
	plain := f.accept("alice", "", t0, readMessage(t, "plain.eml"), inbox)
	welcome := f.accept("alice", "", t0.Add(time.Minute), readMessage(t, "welcome.eml"), inbox)
	f.accept("bob", "", t0.Add(2*time.Minute), readMessage(t, "htmlonly.eml"), inbox) // not Alice's

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: f.srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "script.js", "http://"+ln.Addr().String(), keyAlice, inbox)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("node script.js: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("node script.js: %v", err)
	}

	type failure struct {
		Status int       `json:"status"`
		Data   errorBody `json:"data"`
	}
	var got struct {
		List            []message        `json:"list"`
		Limited         []string         `json:"limited"`
		Message         message          `json:"message"`
		Text            string           `json:"text"`
		Raw             string           `json:"raw"`
		Headers         []headerField    `json:"headers"`
		Attachments     []attachmentMeta `json:"attachments"`
		Deleted         deleteResult     `json:"deleted"`
		AfterDelete     failure          `json:"afterDelete"`
		ListAfterDelete []string         `json:"listAfterDelete"`
		WrongKey        failure          `json:"wrongKey"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("script output is not JSON: %v\n%s", err, out)
	}

	var ids, subjects []string
	for _, m := range got.List {
		ids, subjects = append(ids, m.ID), append(subjects, m.Subject)
	}
	if want := []string{welcome.ID, plain.ID}; !slices.Equal(ids, want) {
		t.Errorf("listMessages ids %v, want %v", ids, want)
	}
	if want := []string{"Welcome to App — confirm", "Plain text only"}; !slices.Equal(subjects, want) {
		t.Errorf("listMessages subjects %q, want %q", subjects, want)
	}
	if want := []string{welcome.ID}; !slices.Equal(got.Limited, want) {
		t.Errorf("listMessages limit 1: %v, want %v", got.Limited, want)
	}
	if got.Message.ID != welcome.ID || got.Message.Inbox != inbox || got.Message.Via != "alice" || len(got.Message.Attachments) != 2 {
		t.Errorf("getMessageMetadata: %+v", got.Message)
	}
	if want := "Welcome, Alice — please confirm your address:\r\nhttps://app.example/confirm?token=abc&x=1\r\n"; got.Text != want {
		t.Errorf("getBodyPlainText %q, want %q", got.Text, want)
	}
	if got.Raw != string(welcome.Raw) {
		t.Errorf("getFullRawMessage: %d bytes differ from the %d stored", len(got.Raw), len(welcome.Raw))
	}
	if !slices.Contains(got.Headers, headerField{Name: "subject", Value: "Welcome to App — confirm"}) {
		t.Errorf("getHeaders json-ordered: %+v", got.Headers)
	}
	if len(got.Attachments) != 2 || got.Attachments[1].FileName != "terms.pdf" {
		t.Errorf("listMessageAttachments: %+v", got.Attachments)
	}
	if want := (deleteResult{ID: welcome.ID, Inbox: inbox, Message: "Message was deleted."}); got.Deleted != want {
		t.Errorf("deleteMessage %+v, want %+v", got.Deleted, want)
	}
	if got.AfterDelete.Status != 404 || got.AfterDelete.Data.Message != "Message not found" {
		t.Errorf("getMessageMetadata after delete: %+v", got.AfterDelete)
	}
	if want := []string{plain.ID}; !slices.Equal(got.ListAfterDelete, want) {
		t.Errorf("listMessages after delete %v, want %v", got.ListAfterDelete, want)
	}
	if got.WrongKey.Status != 401 || got.WrongKey.Data.Status != 401 {
		t.Errorf("wrong key: %+v", got.WrongKey)
	}
}
