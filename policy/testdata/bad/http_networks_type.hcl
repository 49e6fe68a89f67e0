server {
  listen "s" { address = ":0" }
  http {
    open_networks = "127.0.0.0/8"
  }
}
