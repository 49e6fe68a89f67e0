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

credential "app1" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
}

webhook "logins" {
  url     = "https://hooks.example.com/mail"
  secret  = "0123456789abcdef0123"
  events  = ["directive", "queued"]
  logins  = ["app1", "app2", "*"]
  max_age = "1 day"
}

webhook "no-logins" {
  url     = "https://user@hooks.example.com:8443/mail"
  secret  = "0123456789abcdef0123"
  events  = ["*"]
  logins  = []
  max_age = "0"
}

webhook "relative" {
  url    = "/mail"
  secret = "0123456789abcdef0123"
  events = ["*"]
}
