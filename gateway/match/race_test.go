//go:build race

package match

// raceEnabled: the race detector makes sync.Pool drop objects at random,
// so regexp allocates machines and allocation counts mean nothing.
const raceEnabled = true
