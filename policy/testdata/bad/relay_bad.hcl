server {
  listen "s" { address = ":0" }
}

relay "both" {
  mx      = true
  address = "smtp.example.com:25"
  tls     = "starttls"
}

relay "neither" {
}

relay "half-login" {
  address  = "smtp.example.com:587"
  username = "apikey"
}

relay "capture" {
  mx = true
}

relay "no-host" {
  address = ":25"
  tls     = "ssl"
}

relay "neither" {
  mx = true
}
