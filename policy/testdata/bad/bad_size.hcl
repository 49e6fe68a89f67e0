server {
  max_message_size = "25 parsecs"
  listen "s" { address = ":0" }
}
