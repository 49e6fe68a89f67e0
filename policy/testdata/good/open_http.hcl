# The web UI open to everyone works, with a warning; mapped IPv6 networks are IPv4.
server {
  listen "s" {
    address = "127.0.0.1:0"
  }
  http {
    ui            = true
    open_networks = ["0.0.0.0/0", "::ffff:127.0.0.0/104", "192.0.2.0/24", "2001:DB8::/32"]
  }
}
