// Package mesh runs the mesh end to end in one process: the agent's
// identity service (controllers/identity: the CA loaded from its Secret,
// TokenReview against a real API server, SVIDs over SDS), the agent's
// translation (controllers/xds/translate) served over ADS, and
// causeway-proxy sidecars (gateway/proxy.Serve) that get their SVIDs from
// that SDS server and carry traffic between them through HBONE tunnels.
//
// It lives under test/ because gateway/ and controllers/ may not import
// each other (depguard); only tests join them.
package mesh
