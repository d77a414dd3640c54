package server

import (
	"encoding/json"
	"net/http"

	"edgefleet/fleet/api/rest"
)

// Route is a route another part of fleetd mounts on the server (device
// enrollment, device registration): Pattern is an http.ServeMux pattern.
type Route struct {
	Pattern string
	// Operator puts the route behind operator authentication; false
	// mounts it as is, for handlers that authenticate the caller
	// themselves (a device's token or client certificate).
	Operator bool
	Handler  http.Handler
}

// mountExtra mounts Options.Extra, counted in the request metrics like
// every route.
func (s *Server) mountExtra() {
	for _, rt := range s.opt.Extra {
		s.handle(rt.Pattern, rt.Operator, rt.Handler.ServeHTTP)
	}
}

// deviceAddTarget audits a device registration by its id, never its token.
func deviceAddTarget(_ *http.Request, body []byte) (target, detail string) {
	var d rest.DeviceAdded
	_ = json.Unmarshal(body, &d)
	return d.ID, ""
}
