// Command caddy is Caddy v2 with its standard modules and the identity
// handler, the same binary that
// `xcaddy build --with github.com/caddy-identity/caddy-identity` produces.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-identity/caddy-identity"
)

func main() {
	caddycmd.Main()
}
