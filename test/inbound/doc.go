// Package inbound checks the agent's inbound xDS (controllers/xds/translate:
// a sidecar's virtualInbound listener with its jwt_authn and RBAC filters)
// against the data plane's own engines (gateway/authz, gateway/jwtauthn,
// gateway/proxy): what AuthorizationPolicies and RequestAuthentications
// mean is decided by evaluating requests, with real signed tokens, through
// the configuration the agent generates, and the generated HTTP chains are
// compiled and served by a real causeway-proxy.
//
// It lives here, not beside either package, because controllers/ and
// gateway/ may not import each other (depguard); only tests join them.
package inbound
