server {
  listen "s" { address = ":0" }
}

dkim "example.com" {
  selector  = "s 2026"
  algorithm = "rsa-sha1"
  key_file  = "dkim.key"
}

dkim "Example.COM" {
  selector = "s1"
  key_file = "dkim.key"
}

dkim "not a domain" {
  selector = "s1"
  key_file = ""
}

dkim "example.org" {
  key_file = "x.key"
}
