package signer

import (
	"fmt"
	"net/netip"
	"strings"

	"vouch/internal/netset"
)

// HostList is OpenDKIM's InternalHosts/PeerList semantics (util.c
// dkimf_checkhost, dkimf_checkip): host names match exactly, ".example.com"
// matches every name below example.com, IPs and CIDRs match addresses; the
// most specific entry decides and, at the same level, "!" (not) beats a
// positive entry. A host match or an IP match makes a client internal.
//
// OpenDKIM accepts every line and compares entries as text: a name
// literally, a network as "a.b.c.d/bits" with the host bits cleared, so
// "*.example.com", "10.0.0.0/33" or "10.1.2.3/8" never match anything. vouch takes such lines too (a file OpenDKIM runs with
// must load) and reports each as a warning instead of using it.
type HostList struct {
	hosts    map[string]bool // name or ".domain" → positive (false: negated)
	nets     netset.Prefixes[bool]
	n        int
	warnings []string
}

// ParseHostEntries reads entries such as those of internal_hosts; source
// names them in errors ("signing.internal_hosts").
func ParseHostEntries(source string, entries []string) (*HostList, error) {
	h := &HostList{}
	for i, e := range entries {
		h.add(fmt.Sprintf("%s[%d]", source, i), e)
	}
	return h, nil
}

// AddFile adds the entries of an OpenDKIM host list data set (file: or a
// path, csl:).
func (h *HostList) AddFile(spec string) error {
	ds, err := parseDataset(spec, false)
	if err != nil {
		return err
	}
	lines, err := ds.lines()
	if err != nil {
		return err
	}
	for _, l := range lines {
		h.add(l.source, l.key)
	}
	return nil
}

// Len is the number of entries in use.
func (h *HostList) Len() int { return h.n }

// Warnings lists the entries that match no client, each with its source.
func (h *HostList) Warnings() []string { return h.warnings }

// add takes one entry; source names it in warnings.
func (h *HostList) add(source, entry string) {
	if why := h.parse(entry); why != "" {
		h.warnings = append(h.warnings, fmt.Sprintf("%s: %q matches no client and is ignored, as OpenDKIM ignores it: %s", source, entry, why))
		return
	}
	h.n++
}

// parse adds an entry, or says why it can never match.
func (h *HostList) parse(entry string) string {
	e := strings.ToLower(strings.TrimSpace(entry))
	positive := true
	if rest, ok := strings.CutPrefix(e, "!"); ok {
		e, positive = rest, false
	}
	if e == "" {
		return "it is empty"
	}
	if h.hosts == nil {
		h.hosts = map[string]bool{}
	}
	e = strings.TrimSuffix(strings.TrimPrefix(e, "["), "]") // OpenDKIM also takes [a.b.c.d]
	switch ip, err := netip.ParseAddr(e); {
	case strings.Contains(e, "/"):
		p, err := netip.ParsePrefix(strings.Replace(e, "]/", "/", 1))
		if err != nil {
			return "not a network"
		}
		if p != p.Masked() {
			// OpenDKIM looks up the client's network as "a.b.c.d/bits"
			// with the host bits cleared: this text never comes up.
			return fmt.Sprintf("host bits are set (the network is %s)", p.Masked())
		}
		h.addNet(p, positive)
	case err == nil:
		ip = ip.Unmap()
		h.addNet(netip.PrefixFrom(ip, ip.BitLen()), positive)
	case strings.Contains(e, "*"):
		return `host names are compared literally, without wildcards: ".example.com" matches every name below example.com`
	case strings.Trim(e, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "":
		return "not a host name, domain (.example.com), address or network"
	default:
		if _, dup := h.hosts[e]; !dup || !positive {
			h.hosts[e] = positive
		}
	}
	return ""
}

// addNet keeps the first entry of a network, but a "!" entry always wins
// over a positive one for the same network.
func (h *HostList) addNet(p netip.Prefix, positive bool) {
	if _, seen := h.nets.Get(p); !seen || !positive {
		h.nets.Set(p, positive)
	}
}

// Match reports whether a client is internal, and the entry that said so.
// host is the MTA's name for the client ("[192.0.2.1]" when it has none
// that is forward-confirmed; such names are not matched).
func (h *HostList) Match(host string, ip netip.Addr) (bool, string) {
	if h == nil {
		return false, ""
	}
	if ok, e := h.matchHost(host); ok {
		return true, e
	}
	return h.matchIP(ip)
}

func (h *HostList) matchHost(host string) (bool, string) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || strings.HasPrefix(host, "[") || len(h.hosts) == 0 {
		return false, ""
	}
	// mail.example.com, then .example.com, then .com.
	for p := host; ; {
		if positive, ok := h.hosts[p]; ok {
			return positive, p
		}
		i := strings.IndexByte(p[1:], '.')
		if i < 0 {
			return false, ""
		}
		p = p[i+1:]
	}
}

func (h *HostList) matchIP(ip netip.Addr) (bool, string) {
	positive, p, ok := h.nets.Lookup(ip)
	if !ok {
		return false, ""
	}
	return positive, p.String()
}
