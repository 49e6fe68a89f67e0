# The embedded default policy: what `smtpgate serve` runs without --policy.
# Capture mode (nothing is ever delivered), SQLite and a self-signed
# certificate under the data directory, one dev login that may use every
# feature and override every feature with a header directive.
server {
  hostname = env("SMTPGATE_HOSTNAME")
  mode     = "capture"
  data_dir = env("SMTPGATE_DATA")

  listen "submission" {
    address = env("SMTPGATE_SUBMISSION_ADDR")
    tls     = "starttls"
  }
  listen "smtps" {
    address = env("SMTPGATE_SMTPS_ADDR")
    tls     = "implicit"
  }
  http {
    address    = env("SMTPGATE_HTTP_ADDR")
    public_url = env("SMTPGATE_PUBLIC_URL")
    # The web UI is open to this machine without a key; others sign in
    # with the dev API key.
    ui            = true
    open_networks = ["127.0.0.0/8", "::1/128"]
  }
  store {
    driver = "sqlite"
    path   = env("SMTPGATE_DATA")
  }
}

tracking {
  secret     = env("SMTPGATE_DEV_TRACKING_SECRET")
  public_url = env("SMTPGATE_PUBLIC_URL")
}

credential "dev" {
  password_hash = env("SMTPGATE_DEV_PASSWORD_HASH")
  route         = "capture"
  overridable   = ["*"]
}

api_key "dev" {
  key    = env("SMTPGATE_DEV_API_KEY")
  logins = ["*"]
}
