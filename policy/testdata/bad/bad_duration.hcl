server {
  listen "s" { address = ":0" }
  limits {
    command_timeout = "5 minutes"
    data_timeout    = 600
  }
}
