package hijack

import (
	"strings"

	"vouch/whitelist"
)

// normalizeLogin is the key an account is counted under: the SASL login
// (Postfix's {auth_authen}) trimmed and in lower case. Dovecot, Cyrus
// sasldb and most directories look logins up case-insensitively, so
// "Alice@Example.com" and "alice@example.com" are one mailbox and must
// share one budget; otherwise changing the case of a stolen login would
// multiply the limit.
func normalizeLogin(login string) string {
	return strings.ToLower(strings.TrimSpace(login))
}

// unknownLogin: the milter passes "(MECH)" when the MTA sent {auth_type}
// but no {auth_authen} (the macro is not configured). All such sessions
// would share one counter and one user would freeze everybody, so they
// are not limited (and New's caller is warned once).
func unknownLogin(login string) bool {
	return strings.HasPrefix(login, "(") && strings.HasSuffix(login, ")")
}

// exempt is the exempt_file list. It uses the whitelist grammar
// (whitelist.Parse), which has no notion of a login:
//
//   - user@example.com, *@example.com, j*@example.com: address entries,
//     matched against logins that contain an @ (MatchAddress). Like every
//     whitelist address match, a host-name entry "example.com" also covers
//     every login @example.com.
//   - a bare word ("alice", "svc-*"): the grammar reads it as a host name,
//     so it is matched against logins without an @ through MatchHost:
//     exact (case-insensitive), or a host glob. Logins that are not valid
//     host-name characters (a-z 0-9 - _ .) cannot be listed this way, and
//     an all-digit login reads as a mistyped IP address; Parse reports
//     such lines as problems (file:line) and New logs them.
//   - IP addresses and networks are accepted by the grammar but mean
//     nothing here: the exemption is per login, never per client.
type exempt struct {
	list *whitelist.List
}

// match reports the list entry that exempts a normalised login.
func (e exempt) match(login string) (whitelist.Entry, bool) {
	if e.list == nil || login == "" {
		return whitelist.Entry{}, false
	}
	if strings.Contains(login, "@") {
		return e.list.MatchAddress(login)
	}
	return e.list.MatchHost(login)
}
