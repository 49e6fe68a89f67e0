# Policy for `make bench`: capture mode, SQLite, ephemeral ports. "bench"
# has every feature off; "featured" has every feature on (CSS inlining,
# click and open tracking) for the same messages.
server {
  hostname = "bench.smtpgate.test"
  mode     = "capture"
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
  http {
    address    = "127.0.0.1:0"
    public_url = "http://t.bench.test"
  }
  store {
    driver = "sqlite"
    path   = env("BENCH_DATA")
  }
}

tracking {
  secret = "bench-tracking-secret-0123456789abcdef"
}

features "all" {
  inline_css   = true
  track_clicks = true
  track_opens  = true
}

credential "bench" {
  password_hash = env("BENCH_HASH")
}

credential "featured" {
  password_hash = env("BENCH_HASH")
  features      = "all"
}
