package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// runCheck runs `smtpgate check file` and returns stdout, stderr and the
// exit code.
func runCheck(t *testing.T, file string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(smtpgateBin, "check", file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return stdout.String(), stderr.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("smtpgate check %s: %v", file, err)
	}
	return stdout.String(), stderr.String(), 0
}

// TestCheckGood: a valid policy prints "ok" and exits 0, without touching
// the data directory it names.
func TestCheckGood(t *testing.T) {
	t.Parallel()
	for _, file := range []string{filepath.Join("testdata", "check", "good.hcl"), generatedPolicy(t)} {
		stdout, stderr, code := runCheck(t, file)
		if code != 0 || stdout != "ok\n" || stderr != "" {
			t.Errorf("smtpgate check %s: exit %d, stdout %q, stderr %q; want 0, \"ok\\n\", \"\"", file, code, stdout, stderr)
		}
	}
	if _, err := os.Stat("/nonexistent/smtpgate-e2e-check"); err == nil {
		t.Errorf("check created the policy's data directory")
	}
}

// generatedPolicy is the policy the other tests run with.
func generatedPolicy(t *testing.T) string {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.hcl")
	src := renderPolicy(t, policyConf{DataDir: filepath.Join(dir, "data"), Credentials: []credential{app1, app2, app3}})
	if err := os.WriteFile(file, src, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

var wantRE = regexp.MustCompile(`(?m)^# want: (\d+:\d+)$`)

// TestCheckBad: each file in testdata/check other than good.hcl has errors
// at the positions its "# want: line:col" comments name; check must exit
// non-zero and print exactly those diagnostics, one "file:line:col: "
// line each.
func TestCheckBad(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "check", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if filepath.Base(file) == "good.hcl" {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, m := range wantRE.FindAllStringSubmatch(string(src), -1) {
				want = append(want, m[1])
			}
			if len(want) == 0 {
				t.Fatalf("%s has no # want: line:col comment", file)
			}
			stdout, stderr, code := runCheck(t, file)
			if code == 0 {
				t.Fatalf("smtpgate check %s exited 0; stdout %q stderr %q", file, stdout, stderr)
			}
			if strings.Contains(stdout, "ok") {
				t.Errorf("stdout %q says ok", stdout)
			}
			line := regexp.MustCompile(`^` + regexp.QuoteMeta(file) + `:(\d+:\d+): \S`)
			var got []string
			for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
				m := line.FindStringSubmatch(l)
				if m == nil {
					t.Errorf("output line %q does not match %s", l, line)
					continue
				}
				got = append(got, m[1])
			}
			if !slices.Equal(got, want) {
				t.Errorf("diagnostics at %v, want %v:\n%s", got, want, stderr)
			}
		})
	}
	t.Run("missing_file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "absent.hcl")
		stdout, stderr, code := runCheck(t, file)
		if code == 0 || !strings.Contains(stderr, file) {
			t.Errorf("check of a missing file: exit %d, stdout %q, stderr %q; want non-zero naming the file", code, stdout, stderr)
		}
	})
}
