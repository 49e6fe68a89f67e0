# Every block and attribute of the schema. The tests authenticate against it:
#   webapp     / webapp-password  (argon2id)
#   newsletter / bcrypt-password  (bcrypt, cost 10)
#   other      / other-password   (argon2id, read with file())
server {
  hostname         = "mail.example.com"
  mode             = "relay"
  max_message_size = "10MB"
  max_recipients   = 50
  data_dir         = "./state"

  max_schedule_ahead    = "7d"
  capture_simulate_sent = true
  retention {
    max_messages = 5000
    max_age      = "14d"
  }

  tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
  }

  listen "submission" {
    address        = ":587"
    tls            = "starttls"
    proxy_protocol = false
  }
  listen "smtps" {
    address = ":465"
    tls     = "implicit"
  }
  listen "local" {
    address        = "127.0.0.1:2525"
    proxy_protocol = true
    purpose        = "submission"
  }
  listen "mx" {
    address = ":25"
    purpose = "bounces"
  }

  http {
    address    = "127.0.0.1:8025"
    public_url    = "https://t.example.com/"
    ui            = false
    open_networks = ["127.0.0.0/8", "::1/128", "10.1.0.0/16", "127.0.0.0/8"]
  }

  store {
    driver = "sqlite"
    path   = "./state/db"
  }

  limits {
    max_connections        = 500
    max_connections_per_ip = 20
    command_timeout        = "2m"
    data_timeout           = "15m"
    max_auth_failures      = 5
  }
}

directives {
  prefixes = ["X-Smtpgate-", "X-Smtpeter-"]
  vendors  = ["mailgun", "postmark", "emailengine", "sendgrid"]
  on_error = "reject"
}

tracking {
  secret        = env("TRACK_SECRET")
  bounce_domain = "bounces.example.com"
}

features "marketing" {
  inline_css       = true
  track_clicks     = true
  track_text_links = false
  track_opens      = true
  track_bounces    = true
  preventscam      = false
}

features "plain" {
  inline_css = true
}

credential "webapp" {
  password_hash = "$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"
  features      = "marketing"
  overridable   = ["track_opens"]
  allow_from    = ["*@mywebapp.com", "*@*.mywebapp.com", "Ops@Example.org"]
  route         = "sendgrid"
  dkim_domain   = "MyWebApp.com."
  retention {
    max_messages = 1000
    max_age      = "7d"
  }
}

credential "newsletter" {
  password_hash = "$2a$10$7WrWDPtZxUtGCxkoj0061eCc7NTmNfJmSvjyi/rRAfLJutMEgbYJS"
  features      = "plain"
  overridable   = ["*"]
  allow_from    = ["*"]
  route         = "direct"
  retention {} # keeps everything, whatever server.retention says
}

credential "other" {
  password_hash = trimspace(file("other.hash"))
}

api_key "staging-tests" {
  key    = env("STAGING_KEY")
  logins = ["webapp", "other"]
}

api_key "admin" {
  key    = "admin-key-0123456789abcdef"
  logins = ["*"]
}

relay "sendgrid" {
  address                = "smtp.sendgrid.net:587"
  tls                    = "starttls"
  username               = "apikey"
  password               = env("SG_KEY")
  verify_tls             = true
  ca_file                = "ca.pem"
  helo                   = "out.example.com"
  max_age                = "1d12h"
  concurrency            = 10
  per_domain_concurrency = 10
  rate_per_minute        = 600
}

relay "direct" {
  mx         = true
  starttls   = "require"
  port       = 2525
  verify_tls = true
  ca_file    = "/etc/ssl/extra-ca.pem"
}

dkim "MyWebApp.com" {
  selector  = "s2026"
  algorithm = "ed25519"
  key_file  = "dkim.key"
}

# dual signing: a second key for the same domain, with its own selector
dkim "mywebapp.com" {
  selector = "rsa2026"
  key_file = "dkim-rsa.key"
}

webhook "events" {
  url    = "https://hooks.example.com/mail"
  secret = env("HOOK_SECRET")
  events = ["sent", "bounced", "opened", "clicked", "directive"]
  logins = ["webapp", "newsletter", "webapp"]
  max_age = "2h"
}

webhook "audit" {
  url    = "http://127.0.0.1:9000/audit"
  secret = env("HOOK_SECRET")
  events = ["queued", "captured", "failed"]
  logins = ["*"]
}
