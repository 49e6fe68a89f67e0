# Relay defaults and the combinations of TLS settings.
server {
  hostname = "relay.example.com"
  listen "s" {
    address = "127.0.0.1:0"
  }
}

# every default: opportunistic STARTTLS on port 25, nothing checked
relay "mx" {
  mx = true
}

# opportunistic MX may say verify_tls = false: it never checks anyway
relay "mx-quiet" {
  mx         = true
  starttls   = "opportunistic"
  verify_tls = false
  max_age    = "30m"
}

# a smarthost checks its certificate by default
relay "smarthost" {
  address = "smtp.example.net:465"
  tls     = "implicit"
}

# a local test relay without TLS checks nothing
relay "plain" {
  address         = "127.0.0.1:2525"
  tls             = "none"
  verify_tls      = false
  rate_per_minute = 0
}

# a self-signed lab smarthost; per_domain_concurrency follows a small concurrency
relay "lab" {
  address     = "lab.example.net:587"
  verify_tls  = false
  concurrency = 3
}
