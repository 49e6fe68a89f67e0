server {
  listen "s" {
    address = ":0"
  }
