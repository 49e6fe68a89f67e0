# want: 2:8
server {
  listen "submission" {
    address = "127.0.0.1:0"
  }
