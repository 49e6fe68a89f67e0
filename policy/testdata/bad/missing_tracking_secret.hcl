server {
  listen "s" { address = ":0" }
}

features "marketing" {
  track_clicks = true
}

credential "webapp" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  features      = "marketing"
}

credential "overrides" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  overridable   = ["inline_css", "track_opens"]
}
