# Staging: everything is captured, whatever the routes say.
server {
  hostname = "staging.example.com"
  mode     = "capture"
  # ephemeral ports never clash
  listen "a" {
    address = ":0"
  }
  listen "b" {
    address = "127.0.0.1:0"
    tls     = "implicit"
  }
  http {
    public_url = "http://localhost:8025"
  }
}

tracking {
  secret = "a-long-enough-tracking-secret"
}

features "all" {
  track_clicks = true
  track_opens  = true
}

credential "app" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  features      = "all"
  route         = "upstream"
}

relay "upstream" {
  address = "smtp.example.net:465"
  tls     = "implicit"
}

api_key "dev" {
  key    = "dev-key-0123456789abcdef"
  logins = ["*"]
}
