// Package version holds Causeway's version, stamped at build time with
// -ldflags "-X github.com/causeway-mesh/causeway/internal/version.Version=...".
package version

// Version is the version of the running binary.
var Version = "v0.1.0-dev"
