server {
  listen "s" { address = ":0" }
}

credential "plain" {
  password_hash = "hunter2"
}

credential "argon-version" {
  password_hash = "$argon2id$v=16$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
}

credential "argon-memory" {
  password_hash = "$argon2id$v=19$m=9999999,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
}

credential "argon-salt" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$not*base64$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
}

credential "argon2i" {
  password_hash = "$argon2i$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
}

credential "bcrypt-short" {
  password_hash = "$2a$10$7WrWDPtZxUtGCxkoj0061eCc7NTmNfJmSvjyi"
}

credential "bcrypt-cost" {
  password_hash = "$2b$31$7WrWDPtZxUtGCxkoj0061eCc7NTmNfJmSvjyi/rRAfLJutMEgbYJS"
}

credential "bcrypt-alphabet" {
  password_hash = "$2y$10$7WrWDPtZxUtGCxkoj0061eCc7NTmNfJmSvjyi/rRAfLJutMEgbY!S"
}
