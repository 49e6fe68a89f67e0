server {
  listen "s" { address = ":0" }
}

webhook "w" {
  url    = "ftp://hooks.example.com/mail"
  secret = "short"
  events = ["sent", "bounce", "delivered"]
}

webhook "empty" {
  url    = "https://hooks.example.com/mail"
  secret = "0123456789abcdef0123"
  events = []
}
