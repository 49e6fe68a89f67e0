server {
  listen "a" { address = "587" }
  listen "b" { address = ":smtp" }
  listen "c" { address = "bad host!:25" }
  listen "d" { address = ":70000" }
  http {
    address    = "localhost"
    public_url = "t.example.com"
  }
}
