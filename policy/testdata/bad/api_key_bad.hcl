server {
  listen "s" { address = ":0" }
}

credential "webapp" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
}

api_key "short" {
  key    = "tooshort"
  logins = ["*", "webapp"]
}

api_key "a" {
  key    = "0123456789abcdef0123"
  logins = []
}

api_key "b" {
  key    = "0123456789abcdef0123"
  logins = ["webapp"]
}

api_key "b" {
  key    = "another-key-0123456789"
  logins = ["webapp"]
}
