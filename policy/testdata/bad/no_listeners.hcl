server {
  hostname = "mail.example.com"
}
