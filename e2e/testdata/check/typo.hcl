# want: 9:3
# want: 14:19
server {
  hostname = "smtpgate.test"
  listen "submission" {
    address = "127.0.0.1:0"
    tls     = "starttls"
  }
  hostnme = "typo.test"
}

credential "app1" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  allow_from    = 42
}
