# The smallest policy: one listener, no credentials.
server {
  listen "submission" {
    address = ":0"
  }
}
