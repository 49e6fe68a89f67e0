server {
  listen "submission" { address = ":587" }
  listen "submission" { address = ":588" }
}
