server {
  max_schedule_ahead = "a month"
  listen "s" { address = ":0" }
  retention {
    max_messages = -1
    max_age      = "-7d"
  }
}

dkim "example.com" {
  selector = "s1"
  key_file = "dkim.key"
}

credential "app" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  dkim_domain   = "example.co"
  retention {
    max_messages = -5
    max_age      = "a week"
  }
}

credential "app2" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  dkim_domain   = "other.example"
}

credential "app3" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  retention {
    max_mesages = 10
  }
}
