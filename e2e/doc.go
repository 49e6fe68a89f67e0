// Package e2e holds smtpgate's end-to-end tests: the real binary, built once,
// driven by real clients and peers (Python smtplib, Node nodemailer, swaks, a
// private Postfix instance in front of smtpgate or receiving its relayed
// mail, go-smtp), with the mail read back through the Mailsac-compatible
// capture API. It also kills the process under load to
// prove that acknowledged mail survives (captured, or relayed to a receiving
// MTA in the test at least once, with no delivery left stuck after the
// restart), reloads the policy with SIGHUP, and runs the embedded dev
// default exactly as its banner says.
//
// The package has no code outside its tests. Run it with
//
//	go test ./e2e/ -count=1 -v
//
// Environment:
//   - CI: when set, a missing client tool fails the test instead of skipping it.
//   - SMTPGATE_E2E_BIN: use this smtpgate binary instead of building ./cmd/smtpgate.
//   - SMTPGATE_E2E_SKIP_DEV=1: skip the dev-default test, which needs the fixed
//     ports 2587, 2465 and 8025.
package e2e
