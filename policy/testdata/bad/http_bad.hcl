server {
  listen "s" { address = ":0" }
  http {
    ui            = "yes"
    open_networks = ["127.0.0.1", "10.0.0.1/8", "localhost", "::1/129", "fe80::1%eth0/64", "192.168.0.0/16"]
  }
}
