server {
  listen "s" { address = ":0" }
}

relay "limits" {
  address                = "smtp.example.com:587"
  max_age                = "5 days"
  concurrency            = 1001
  per_domain_concurrency = 0
  rate_per_minute        = -1
  helo                   = "not a host"
}

relay "per-domain" {
  address                = "smtp.example.com:587"
  concurrency            = 4
  per_domain_concurrency = 5
  max_age                = "0"
}

relay "smarthost-mx-settings" {
  address  = "smtp.example.com:587"
  starttls = "require"
  port     = 2525
}

relay "mx-settings" {
  mx       = true
  starttls = "always"
  port     = 70000
  tls      = "starttls"
}

relay "mx-verify" {
  mx         = true
  verify_tls = true
  ca_file    = "ca.pem"
}

relay "mx-ca" {
  mx      = true
  ca_file = "ca.pem"
}

relay "plain-verify" {
  address    = "127.0.0.1:2525"
  tls        = "none"
  verify_tls = true
}

relay "no-verify-ca" {
  address    = "smtp.example.com:465"
  tls        = "implicit"
  verify_tls = false
  ca_file    = "ca.pem"
}

relay "empty-ca" {
  address = "smtp.example.com:465"
  ca_file = ""
}

relay "zero-concurrency" {
  mx          = true
  concurrency = 0
  port        = 0
}
