// Command smtpgate is the policy-driven SMTP proxy's command line: serve,
// check a policy, and hash a password. The logic lives in the packages it
// calls; this file only parses flags.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/smtpgate/smtpgate/app"
	"github.com/smtpgate/smtpgate/policy"
)

func main() {
	if err := newRoot().ExecuteContext(context.Background()); err != nil {
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "smtpgate",
		Short:         "Policy-driven SMTP proxy: capture or relay mail per login",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe(), newCheck(), newHashPassword(), newDKIM())
	return root
}

func newServe() *cobra.Command {
	var policyPath, dataDir, logLevel, readyFile, cpuProfile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run smtpgate (without --policy: the embedded dev policy, capture mode)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			tuneGC(os.Getenv)
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			a, err := app.New(cmd.Context(), app.Options{PolicyPath: policyPath, DataDir: dataDir, Log: log})
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return err
			}
			if err := a.Run(cmd.Context(), cmd.OutOrStdout(), readyFile); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&policyPath, "policy", "", "policy file (HCL); default: the embedded dev policy")
	cmd.Flags().StringVar(&dataDir, "data", "data", "data directory of the embedded dev policy")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile to this file until shutdown (for benchmarks)")
	cmd.Flags().StringVar(&readyFile, "ready-file", "", "write the bound addresses as JSON to this file once listening")
	return cmd
}

func newCheck() *cobra.Command {
	var explain bool
	var login, message string
	cmd := &cobra.Command{
		Use:   "check POLICY",
		Short: "Validate a policy file: prints ok, or every problem as file:line:col: message",
		Long: `Validate a policy file: prints ok, or every problem as file:line:col: message.

With --explain --login L --message FILE it also runs FILE through the content
features exactly as a submission by login L would (nothing is stored or sent)
and prints the resolved features and why: the policy's value, each directive
header applied or refused, and what the transforms would change.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, err := policy.Load(args[0], policy.Options{})
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), strings.TrimRight(err.Error(), "\n"))
				return err
			}
			if !explain {
				fmt.Fprintln(cmd.OutOrStdout(), "ok")
				return nil
			}
			if login == "" || message == "" {
				err := errors.New("--explain needs --login and --message")
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return err
			}
			raw, err := os.ReadFile(message)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return err
			}
			if err := app.Explain(cmd.OutOrStdout(), pol, login, raw); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return err
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&explain, "explain", false, "explain the features for --login and --message")
	cmd.Flags().StringVar(&login, "login", "", "credential name, with --explain")
	cmd.Flags().StringVar(&message, "message", "", "an RFC 5322 message file, with --explain")
	return cmd
}

func newHashPassword() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Read a password from standard input and print its argon2id hash for password_hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(cmd.InOrStdin())
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return err
			}
			h, err := policy.HashPassword(pw)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("hash-password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("hash-password: no password on standard input")
	}
	return line, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return cfg.Build()
}

// startCPUProfile starts a CPU profile into path and returns its stop function.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func newDKIM() *cobra.Command {
	cmd := &cobra.Command{Use: "dkim", Short: "DKIM key tools"}
	var o app.KeygenOptions
	keygen := &cobra.Command{
		Use:   "keygen --domain D --selector S [--algorithm ed25519|rsa]",
		Short: "Write a new DKIM key and print its DNS TXT record and policy block",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := app.DKIMKeygen(cmd.OutOrStdout(), o); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return err
			}
			return nil
		},
	}
	keygen.Flags().StringVar(&o.Domain, "domain", "", "signing domain (d=)")
	keygen.Flags().StringVar(&o.Selector, "selector", "", "selector (s=)")
	keygen.Flags().StringVar(&o.Algorithm, "algorithm", "ed25519", "ed25519 or rsa")
	keygen.Flags().IntVar(&o.Bits, "bits", 0, "RSA key size (default 2048)")
	keygen.Flags().StringVar(&o.Out, "out", "", "key file (default <selector>.<domain>.<algorithm>.key)")
	keygen.Flags().BoolVar(&o.Force, "force", false, "overwrite an existing key file")
	cmd.AddCommand(keygen)
	return cmd
}

// serveGCPercent is the garbage collector's target (GOGC) for serve unless
// the environment sets GOGC: smtpgate's live heap is small (tens of MB)
// while every message allocates its bodies afresh, so at the default of
// 100 the collector runs often and marks the same small heap again and
// again. At 400 it costs ~7% less CPU per captured message in the capture
// benchmark for ~25 MB more resident memory. GOMEMLIMIT, when set, still
// bounds the heap.
const serveGCPercent = 400

// tuneGC applies serveGCPercent unless GOGC is set, and returns the
// percent in force.
func tuneGC(getenv func(string) string) int {
	if v := getenv("GOGC"); v != "" {
		old := debug.SetGCPercent(-1)
		debug.SetGCPercent(old)
		return old
	}
	debug.SetGCPercent(serveGCPercent)
	return serveGCPercent
}
