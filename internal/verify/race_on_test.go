//go:build race

package verify

// raceEnabled: the race detector slows canonicalization about tenfold.
const raceEnabled = true
