server {
  listen "s" { address = ":0" }
}

directives {
  prefixes = ["X-Smtpgate-", "X Bad:"]
  vendors  = ["mailgun", "mailchimp", "postmrk"]
  on_error = "bounce"
}
