# Policy for `make bench-relay` (bench/relay.sh): relay mode, SQLite queue,
# every message DKIM-signed (Ed25519) with click and open tracking, relayed
# without TLS to the local smtp-sink at env("BENCH_SINK"). The login "check"
# has the same features and goes to a second smtp-sink that keeps each
# message in a file (env("BENCH_DUMP_SINK")), so that the script can see the
# signature and the tracked links before it measures.
server {
  hostname = "bench.smtpgate.test"
  mode     = "relay"
  data_dir = env("BENCH_DATA")
  max_recipients = 100
  limits {
    max_connections        = 2000
    max_connections_per_ip = 1000
  }
  listen "submission" {
    address = "127.0.0.1:0"
    tls     = "starttls"
  }
  store {
    driver = "sqlite"
    path   = env("BENCH_DATA")
  }
}

tracking {
  secret     = "bench-tracking-secret-0123456789abcdef"
  public_url = "http://t.example.com"
}

features "tracked" {
  track_clicks = true
  track_opens  = true
}

# The same connection bound as Postfix's default_destination_concurrency_limit
# (20), which the Postfix half of the benchmark runs with.
relay "sink" {
  address                = env("BENCH_SINK")
  tls                    = "none"
  concurrency            = env("BENCH_RELAY_CONCURRENCY")
  per_domain_concurrency = env("BENCH_RELAY_CONCURRENCY")
}

relay "dump" {
  address = env("BENCH_DUMP_SINK")
  tls     = "none"
}

dkim "example.com" {
  selector  = "s1"
  algorithm = "ed25519"
  key_file  = env("BENCH_DKIM_KEY")
}

credential "bench" {
  password_hash = env("BENCH_HASH")
  features      = "tracked"
  route         = "sink"
}

credential "check" {
  password_hash = env("BENCH_HASH")
  features      = "tracked"
  route         = "dump"
}
