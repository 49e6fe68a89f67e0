server {
  max_message_size = "2GB"
  max_recipients   = 0
  listen "s" { address = ":0" }
}
