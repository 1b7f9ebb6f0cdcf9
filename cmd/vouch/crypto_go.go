//go:build !goexperiment.boringcrypto

package main

// cryptoBackend says which implementation signs: this is the pure-Go,
// static build (plain go build).
func cryptoBackend() string { return "Go" }
