# Production: two apps relay through smtpgate. The web app's mail goes out
# through a smarthost with click/open/bounce tracking and CSS inlining; the
# billing system's mail goes straight to the recipients' MX hosts, DKIM
# dual-signed, with no tracking. Events reach the app's webhook.
server {
  hostname = "mail.example.com"
  mode     = "relay"
  data_dir = "/var/lib/smtpgate"

  tls {
    cert_file = "/etc/smtpgate/cert.pem"
    key_file  = "/etc/smtpgate/key.pem"
  }
  listen "submission" {
    address = ":587"
    tls     = "starttls"
  }
  listen "smtps" {
    address = ":465"
    tls     = "implicit"
  }
  listen "mx" {
    address = ":25"
    purpose = "bounces"
  }
  http {
    address    = ":8025"
    public_url = "https://t.example.com"
  }
  store {
    driver = "postgres"
    dsn    = env("SMTPGATE_PG_DSN")
  }
}

directives {
  vendors = ["mailgun", "postmark"]
}

tracking {
  secret        = env("SMTPGATE_TRACKING_SECRET")
  bounce_domain = "bounces.example.com"
}

features "marketing" {
  inline_css    = true
  track_clicks  = true
  track_opens   = true
  track_bounces = true
}

credential "webapp" {
  password_hash = env("WEBAPP_SMTP_HASH")
  features      = "marketing"
  overridable   = ["track_opens", "track_clicks"]
  allow_from    = ["*@example.com"]
  route         = "smarthost"
}

credential "billing" {
  password_hash = env("BILLING_SMTP_HASH")
  allow_from    = ["billing@example.com"]
  route         = "direct"
  dkim_domain   = "example.com"
}

api_key "ops" {
  key    = env("SMTPGATE_OPS_KEY")
  logins = ["*"]
}

relay "smarthost" {
  address  = "smtp.provider.example:587"
  tls      = "starttls"
  username = "example"
  password = env("SMARTHOST_PASSWORD")
}

relay "direct" {
  mx                     = true
  starttls               = "opportunistic"
  per_domain_concurrency = 4
  rate_per_minute        = 600
}

# smtpgate dkim keygen --domain example.com --selector ed2026 --algorithm ed25519 --out /etc/smtpgate/dkim-ed.key
dkim "example.com" {
  selector  = "ed2026"
  algorithm = "ed25519"
  key_file  = "/etc/smtpgate/dkim-ed.key"
}
dkim "example.com" {
  selector  = "rsa2026"
  algorithm = "rsa"
  key_file  = "/etc/smtpgate/dkim-rsa.key"
}

webhook "app" {
  url    = "https://app.example.com/hooks/mail"
  secret = env("SMTPGATE_WEBHOOK_SECRET")
  events = ["sent", "deferred", "bounced", "failed", "opened", "clicked"]
  logins = ["webapp"]
}
