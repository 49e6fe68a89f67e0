package relay_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/relay"
	"github.com/smtpgate/smtpgate/relay/internal/smtptest"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
)

// Environment of the crashing child of TestKilledWorkerLeaseExpires.
const (
	crashDirEnv  = "SMTPGATE_RELAY_CRASH_DIR"
	crashHostEnv = "SMTPGATE_RELAY_CRASH_SMARTHOST"
)

// crashLease is the child's lease: the survivor's clock runs this much
// ahead to see it expired.
const crashLease = 2 * time.Minute

// TestCrashChild is the child process: a worker that runs until it is
// killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestKilledWorkerLeaseExpires")
	}
	db, err := sqlite.Open(context.Background(), dir, zap.NewNop())
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	w, err := relay.NewWorker(relay.Config{
		Settings:       relay.Settings{Routes: []relay.Route{{Name: "up", Address: os.Getenv(crashHostEnv), TLS: relay.TLSNone}}},
		Owner:          "doomed",
		PollInterval:   10 * time.Millisecond,
		AttemptTimeout: time.Minute,
		Lease:          crashLease,
	}, db, db, zap.NewNop())
	if err != nil {
		fmt.Println("worker:", err)
		os.Exit(2)
	}
	_ = w.Run(context.Background()) // until SIGKILL
}

// TestKilledWorkerLeaseExpires kills (SIGKILL) a worker process in the
// middle of DATA. Its lease keeps the delivery from everyone until it
// expires; then another worker delivers it, and the receiver gets the
// message exactly once (the dead worker never finished DATA).
func TestKilledWorkerLeaseExpires(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("parent only")
	}
	dir := t.TempDir()
	inData := make(chan struct{}, 1)
	release := make(chan struct{})
	var entered atomic.Int32
	srv := smtptest.Start(t, smtptest.Options{DataStart: func(string, []string) (int, error) {
		if entered.Add(1) == 1 { // the child's attempt
			inData <- struct{}{}
			<-release
		}
		return 0, nil
	}})
	route := relay.Route{Name: "up", Address: srv.Addr, TLS: relay.TLSNone}

	db, err := sqlite.Open(context.Background(), dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	m := &store.Message{ID: store.NewID(now), Login: "app", Route: "up", MailFrom: "app@sender.test",
		Recipients: []string{"x@r.test"}, Received: now, Raw: testMessage("app@sender.test", []string{"x@r.test"}, "crash")}
	m.Size = int64(len(m.Raw))
	m.Deliveries = relay.Deliveries(m, route)
	if err := db.Accept(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashHostEnv+"="+srv.Addr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inData:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the child never reached DATA")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("child: %v", cmd.Wait()) // "signal: killed"
	close(release)

	h := &harness{t: t, dns: nil, now: time.Now, log: zap.NewNop()}
	h.db, err = sqlite.Open(context.Background(), dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.db.Close() })
	ds := h.deliveries(m.ID)
	if ds[0].State != store.DeliveryQueued || ds[0].Attempts != 0 {
		t.Fatalf("after the crash: %+v, want queued with no attempt recorded", ds[0])
	}
	// A worker on the real clock cannot claim it: the dead worker's lease
	// holds.
	q := store.Queue(h.db)
	if got, err := q.ClaimDeliveries(context.Background(), "survivor", time.Now(), 10, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("claimed %d deliveries under a live lease (%v)", len(got), err)
	}
	// Once the lease has expired, the survivor delivers it.
	ahead := func() time.Time { return time.Now().Add(crashLease + time.Second) }
	w, err := relay.NewWorker(relay.Config{
		Settings: relay.Settings{Routes: []relay.Route{route}}, Owner: "survivor", Now: ahead,
		PollInterval: 10 * time.Millisecond, AttemptTimeout: 30 * time.Second, Lease: time.Minute,
	}, h.db, h.db, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	ds = h.wait(m.ID, "sent", settled)
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}
	if ds[0].State != store.DeliverySent || ds[0].Attempts != 1 {
		t.Errorf("delivery %+v", ds[0])
	}
	if n := entered.Load(); n != 2 {
		t.Errorf("DATA started %d times, want 2 (the killed worker's, the survivor's)", n)
	}
	// The survivor's delivery was accepted. The killed worker's one may
	// have been too: when the child had already written the whole message
	// before it died, the receiver still reads it from its socket buffer
	// after release and accepts it. That is the at-least-once window (a 250
	// the worker never got to record), which is why the delivery was sent
	// again; never zero, at most those two.
	if n := srv.Accepted("x@r.test"); n < 1 || n > 2 {
		t.Errorf("receiver accepted the message %d times, want 1 or 2", n)
	}
}
