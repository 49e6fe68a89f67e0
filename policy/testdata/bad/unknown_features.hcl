server {
  listen "s" { address = ":0" }
}

features "marketing" {
  inline_css = true
}

credential "webapp" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  features      = "marketting"
}
