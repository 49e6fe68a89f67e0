# Short secrets work, with warnings (tests use keys like these).
server {
  listen "s" {
    address = "127.0.0.1:0"
  }
}

tracking {
  secret = "short"
}

credential "app1" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  overridable   = ["*"]
  allow_from    = ["*@app1.example"]
}

api_key "k1" {
  key    = "key-one"
  logins = ["app1"]
}

webhook "w" {
  url    = "https://hooks.example.com/"
  secret = "hook"
  events = ["sent", "accepted"] # the old name of "queued"
}
