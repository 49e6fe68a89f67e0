server {
  listen "s" { address = ":0" }
  store {
    driver = "postgres"
    dsn    = env("NOT_SET_ANYWHERE")
  }
}

tracking {
  secret = env("ALSO_NOT_SET")
}

credential "webapp" {
  password_hash = env("WEBAPP_HASH")
  allow_from    = [env("NOPE"), "*@example.com"]
}
