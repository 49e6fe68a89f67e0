# A staging environment: everything is captured, nothing is ever delivered.
# Each app has its own login, and the test suite's API key reads only its
# own app's mail.
server {
  hostname = "smtpgate.staging.internal"
  mode     = "capture"
  data_dir = "/var/lib/smtpgate"

  listen "submission" {
    address = ":587"
    tls     = "starttls"
  }
  listen "smtps" {
    address = ":465"
    tls     = "implicit"
  }
  http {
    address = ":8025"
  }
  store {
    driver = "sqlite"
    path   = "/var/lib/smtpgate"
  }
}

credential "shop" {
  password_hash = env("SHOP_SMTP_HASH")
  allow_from    = ["*@shop.example.com"]
}

credential "billing" {
  password_hash = env("BILLING_SMTP_HASH")
  allow_from    = ["billing@example.com", "*@invoices.example.com"]
}

api_key "shop-tests" {
  key    = env("SHOP_API_KEY")
  logins = ["shop"]
}

api_key "qa" {
  key    = env("QA_API_KEY")
  logins = ["*"]
}
