server {
  listen "s" { address = ":0" }
}

credential "webapp" {
  password_hash = lower("X")
}

tracking {
  secret = env("A", "B")
}
