# A complete, valid policy: `smtpgate check` prints "ok" and exits 0.
server {
  hostname = "smtpgate.test"
  mode     = "capture"
  data_dir = "/nonexistent/smtpgate-e2e-check"

  listen "submission" {
    address = "127.0.0.1:0"
    tls     = "starttls"
  }
  http {
    address = "127.0.0.1:0"
  }
}

credential "app1" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  allow_from    = ["*@app1.test"]
}

api_key "k1" {
  key    = "key-one-for-check"
  logins = ["app1"]
}
