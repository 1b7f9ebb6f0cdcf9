package verify

import (
	"context"

	"vouch/internal/resolver"
)

// LookupTXT returns the TXT lookup go-msgauth's DKIM verifier wants
// (dkim.VerifyOptions.LookupTXT), built on the shared resolver. Its errors
// are bare *net.DNSError values: IsNotFound for NXDOMAIN/NODATA (the
// signature is permerror: no key), IsTemporary/IsTimeout for timeouts,
// SERVFAIL and the like (temperror). One string per TXT record, its
// character-strings joined.
//
// The lookup has no context of its own: it is bounded by the resolver's
// timeout × attempts (10 s with the defaults).
func LookupTXT(res *resolver.Resolver) func(string) ([]string, error) {
	return lookupTXT(context.Background(), res)
}

func lookupTXT(ctx context.Context, res *resolver.Resolver) func(string) ([]string, error) {
	n := res.Net()
	return func(name string) ([]string, error) {
		// Not a wrapper around the error: the return is exactly
		// NetResolver's bare *net.DNSError.
		return n.LookupTXT(ctx, name)
	}
}
