server {
  listen "s" { address = ":0" }
}

credential "webapp" {
  password_hash = file("missing.hash")
}

credential "dir" {
  password_hash = file(".")
}
