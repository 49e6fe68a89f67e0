server {
  max_message_size = 1048576 # a number is bytes
  listen "submission" {
    address = "[::1]:587"
  }
  listen "smtps" {
    address = "[::1]:465"
    tls     = "implicit"
  }
  store {
    driver = "postgres"
    dsn    = env("PG_DSN")
  }
}

directives {
  prefixes = ["X-Mail-"]
  vendors  = ["Mailgun", "mailgun"]
}

webhook "all" {
  url    = "http://127.0.0.1:9000/hook"
  secret = "0123456789abcdef0123"
  events = ["*"]
}
