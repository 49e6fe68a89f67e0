# Policy for `make bench`: capture mode, SQLite, ephemeral ports.
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
  store {
    driver = "sqlite"
    path   = env("BENCH_DATA")
  }
}

credential "bench" {
  password_hash = env("BENCH_HASH")
}
