package smtptest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// SinkPath is where Debian's postfix package installs smtp-sink.
const SinkPath = "/usr/sbin/smtp-sink"

// Sink is Postfix's smtp-sink(1), a real SMTP receiver that throws mail
// away (or dumps each message to a file), on 127.0.0.1.
type Sink struct {
	Addr string
	Port int
	dir  string
}

// StartSink runs smtp-sink on a free loopback port and stops it in
// t.Cleanup; the test is skipped when smtp-sink is not installed. With dump
// set, every message is written to a file (see Dumps); without it, mail is
// discarded, which is what a benchmark wants.
func StartSink(t testing.TB, dump bool) *Sink {
	t.Helper()
	if _, err := os.Stat(SinkPath); err != nil {
		t.Skipf("smtp-sink not installed: %v", err)
	}
	s := &Sink{}
	if dump {
		// smtp-sink drops to an unprivileged user before it writes, who
		// cannot enter t.TempDir's parent (mode 0700).
		dir, err := os.MkdirTemp("", "smtp-sink-")
		if err == nil {
			err = os.Chmod(dir, 0o777)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		s.dir = dir
	}
	// smtp-sink takes a port number, not a listener: take a free port
	// from the kernel and hand it over (retrying if another process takes
	// it in between).
	var lastErr error
	for range 5 {
		port := freePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := []string{}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "postfix") // required when run as root
		}
		if dump {
			args = append(args, "-d", filepath.Join(s.dir, "m."))
		}
		args = append(args, addr, "256")
		cmd := exec.Command(SinkPath, args...)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("smtp-sink: %v", err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		if waitListening(addr, exited) {
			t.Cleanup(func() {
				select {
				case <-exited:
					t.Errorf("smtp-sink exited early: %s", out.String())
				default:
				}
				_ = cmd.Process.Kill()
				<-exited
			})
			s.Addr, s.Port = addr, port
			return s
		}
		_ = cmd.Process.Kill()
		<-exited
		lastErr = fmt.Errorf("smtp-sink on %s did not start: %s", addr, out.String())
	}
	t.Fatalf("%v", lastErr)
	return nil
}

// Dumps returns the files of the messages received so far.
func (s *Sink) Dumps(t testing.TB) []string {
	t.Helper()
	if s.dir == "" {
		t.Fatal("smtptest: the sink was started without dump")
	}
	files, err := filepath.Glob(filepath.Join(s.dir, "m.*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitListening dials addr until it answers, the process exits, or 10 s
// pass.
func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// lockedBuffer collects a child's output from its copying goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
