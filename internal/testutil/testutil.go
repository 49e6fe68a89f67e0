// Package testutil holds test helpers that several packages' tests share:
// a self-signed TLS certificate for loopback servers, a line-oriented SMTP
// client on a raw socket, and a PostgreSQL schema of its own per test.
// Everything here is real (real sockets, real TLS, a real server); a
// helper fails or skips the test through its testing.TB.
package testutil
