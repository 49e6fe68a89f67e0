server {
  listen "a" { address = ":587" }
  listen "b" { address = "0.0.0.0:587" }
  listen "c" { address = "127.0.0.1:2525" }
  listen "d" { address = "127.0.0.1:02525" }
  listen "e" { address = "127.0.0.2:2525" }
}
