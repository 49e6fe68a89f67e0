server {
  listen "submission" { address = ":587" }
  listen "mx" {
    address = ":25"
    purpose = "bounces"
    tls     = "implicit"
  }
  listen "other" {
    address = ":2525"
    purpose = "bounce"
  }
}

# a tracking block without bounce_domain
tracking {
  secret = "0123456789abcdef0123"
}
