server {
  listen "s" { address = ":0" }
}

tracking {
  secret = ""
}

api_key "k" {
  key    = ""
  logins = ["*"]
}
