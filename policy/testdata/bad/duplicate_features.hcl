server {
  listen "s" { address = ":0" }
}

features "m" {
  inline_css = true
}

features "m" {
  track_opens = true
}
