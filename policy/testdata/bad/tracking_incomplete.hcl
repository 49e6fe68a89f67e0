server {
  listen "s" { address = ":0" }
}

tracking {
  secret = "short"
}

features "bounces" {
  track_bounces = true
}

features "clicks" {
  track_clicks = true
}

credential "bounces" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  features      = "bounces"
}

credential "clicks" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  features      = "clicks"
}
