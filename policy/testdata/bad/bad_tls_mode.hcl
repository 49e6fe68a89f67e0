server {
  listen "s" {
    address = ":0"
    tls     = "startls"
  }
  listen "t" {
    address = "127.0.0.1:0"
    tls     = "none"
  }
}
