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

# dual signing needs a selector per key; S1 is s1 in the DNS
dkim "example.com." {
  selector  = "S1"
  algorithm = "ed25519"
  key_file  = "dkim2.key"
}
