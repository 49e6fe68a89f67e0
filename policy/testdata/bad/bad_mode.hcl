server {
  mode     = "captur"
  hostname = "mail example com"
  data_dir = ""
  listen "s" { address = ":0" }
}
