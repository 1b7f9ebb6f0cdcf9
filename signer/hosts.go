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
type HostList struct {
	hosts map[string]bool // name or ".domain" → positive (false: negated)
	nets  netset.Prefixes[bool]
	n     int
}

// ParseHostEntries reads entries such as those of internal_hosts; source
// names them in errors ("signing.internal_hosts").
func ParseHostEntries(source string, entries []string) (*HostList, error) {
	h := &HostList{}
	for i, e := range entries {
		if err := h.add(e); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", source, i, err)
		}
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
		if err := h.add(l.key); err != nil {
			return fmt.Errorf("%s: %w", l.source, err)
		}
	}
	return nil
}

// Len is the number of entries.
func (h *HostList) Len() int { return h.n }

func (h *HostList) add(entry string) error {
	e := strings.ToLower(strings.TrimSpace(entry))
	positive := true
	if rest, ok := strings.CutPrefix(e, "!"); ok {
		e, positive = rest, false
	}
	if e == "" {
		return fmt.Errorf("empty entry %q", entry)
	}
	if h.hosts == nil {
		h.hosts = map[string]bool{}
	}
	e = strings.TrimSuffix(strings.TrimPrefix(e, "["), "]") // OpenDKIM also takes [a.b.c.d]
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(strings.Replace(e, "]/", "/", 1))
		if err != nil {
			return fmt.Errorf("bad network %q", entry)
		}
		h.addNet(p, positive)
	} else if ip, err := netip.ParseAddr(e); err == nil {
		ip = ip.Unmap()
		h.addNet(netip.PrefixFrom(ip, ip.BitLen()), positive)
	} else {
		if strings.Trim(e, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
			return fmt.Errorf("%q is not a host name, domain (.example.com), address or network", entry)
		}
		if _, dup := h.hosts[e]; !dup || !positive {
			h.hosts[e] = positive
		}
	}
	h.n++
	return nil
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
