// Package cli holds the causeway command tree (cobra). Commands print for a
// person on the given writers and return errors instead of exiting, so tests
// run them in-process. cmd/causeway only wires signals and exit codes.
package cli
