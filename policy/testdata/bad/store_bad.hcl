server {
  listen "s" { address = ":0" }
  store {
    driver = "postgres"
    path   = "./data"
  }
}
