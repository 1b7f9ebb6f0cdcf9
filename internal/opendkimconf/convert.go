package opendkimconf

import (
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"sort"
	"strings"

	"vouch/internal/config"
	"vouch/internal/sockaddr"
)

// Item is an OpenDKIM setting that vouch does not take over, with the
// reason, or a note on one it takes over with a difference worth knowing.
type Item struct {
	Option string
	Where  string // file:line; "" for an option that is not set (its default)
	Reason string

	pos int // for sorting: problems, then settings in file order, then defaults
}

func (i Item) String() string {
	if i.Where == "" {
		return fmt.Sprintf("%s (OpenDKIM default): %s", i.Option, i.Reason)
	}
	return fmt.Sprintf("%s (%s): %s", i.Option, i.Where, i.Reason)
}

// Result is the converted configuration.
type Result struct {
	TOML       []byte // vouch configuration, commented
	NotCarried []Item // every setting vouch does not take over, with the reason
	Notes      []Item // differences in what is taken over
	// LDAPBindPassword is OpenDKIM's LDAPBindPassword: never written into
	// the TOML, which names Options.LDAPPasswordFile instead; the caller
	// writes it there (mode 0600).
	LDAPBindPassword string
}

// DefaultLDAPPasswordFile is where import-opendkim puts an LDAP bind
// password unless told otherwise.
const DefaultLDAPPasswordFile = "/etc/vouch/ldap.secret"

// Options are the choices the conversion leaves to its caller.
type Options struct {
	LDAPPasswordFile string // "" means DefaultLDAPPasswordFile
}

// Convert turns an OpenDKIM configuration into vouch's. The result names
// the same key, table and host files; it does not read the key files.
func Convert(f *File, opts Options) *Result {
	if opts.LDAPPasswordFile == "" {
		opts.LDAPPasswordFile = DefaultLDAPPasswordFile
	}
	c := &converter{f: f, opts: opts, sign: true, handled: map[string]bool{}, pos: map[string]int{}}
	for i, s := range f.Settings {
		c.pos[strings.ToLower(s.Name)] = i // the last one counts
	}
	c.run()
	sortItems(c.res.NotCarried)
	sortItems(c.res.Notes)
	c.res.TOML = c.render()
	return &c.res
}

// converter holds the vouch settings as they are found. Values are TOML
// already; each carries the OpenDKIM option it came from as a comment.
type converter struct {
	opts    Options
	f       *File
	res     Result
	handled map[string]bool // lower-case option names taken care of
	pos     map[string]int

	sign      bool // Mode contains s
	verifyOff bool // Mode lacks v
	top       []tomlLine
	dns       []tomlLine
	signing   []tomlLine
	verify    []tomlLine
	keys      [][]tomlLine
	haveKeys  bool
}

type tomlLine struct {
	key, value, comment string
}

func (c *converter) get(name string) (Setting, bool) {
	c.handled[strings.ToLower(name)] = true
	return c.f.Get(name)
}

func (c *converter) item(name string, s Setting, set bool, reason string) Item {
	it := Item{Option: name, Reason: reason, pos: 1 << 30}
	if set {
		it.Option, it.Where, it.pos = s.Name, s.Where(), c.pos[strings.ToLower(s.Name)]
	}
	return it
}

// drop records a setting (or an unset option's default) vouch does not take over.
func (c *converter) drop(name string, s Setting, set bool, reason string) {
	c.res.NotCarried = append(c.res.NotCarried, c.item(name, s, set, reason))
}

func (c *converter) note(name string, s Setting, set bool, reason string) {
	c.res.Notes = append(c.res.Notes, c.item(name, s, set, reason))
}

func from(s Setting) string { return s.Name + ", " + s.Where() }

func (c *converter) run() {
	for i, p := range c.f.Problems {
		c.res.NotCarried = append(c.res.NotCarried, Item{Option: p.Name, Where: p.Where(), Reason: p.Reason, pos: -len(c.f.Problems) + i})
	}
	seen := map[string]int{}
	for _, s := range c.f.Settings {
		seen[strings.ToLower(s.Name)]++
	}
	for _, s := range c.f.Settings {
		if n := seen[strings.ToLower(s.Name)]; n > 1 {
			last, _ := c.f.Get(s.Name)
			c.note(s.Name, last, true, fmt.Sprintf("set %d times: the last one counts, as in OpenDKIM", n))
			seen[strings.ToLower(s.Name)] = 0
		}
	}

	c.mode()
	c.top = append(c.top, tomlLine{"mode", `"trial"`, "every refusal vouch adds to what OpenDKIM did starts in trial (tempfail, logged as \"would reject\"); set \"enforce\" when the log looks right"})
	c.onActions()
	c.socket()
	c.authservID()
	c.nameservers()
	c.internalHosts()
	c.tables()
	c.domainKeys()
	c.booleans()
	c.headers()
	c.signatureTTL()
	c.canonicalization()
	c.algorithm()

	// Everything else is either in the not-carried table or unknown to
	// this converter (which a test rules out).
	for i, s := range c.f.Settings {
		name := strings.ToLower(s.Name)
		if c.handled[name] || c.pos[name] != i {
			continue
		}
		reason, ok := notCarried[s.Name]
		if !ok {
			reason = "not supported by vouch"
		}
		c.drop(s.Name, s, true, reason)
	}
	if !c.haveKeys && c.sign {
		c.res.Notes = append(c.res.Notes, Item{Option: "KeyTable, KeyFile", Where: "none usable", pos: 1 << 30,
			Reason: "no signing keys: nothing names a KeyTable and SigningTable or a Domain, Selector and KeyFile that vouch can use; add [[signing.key]] entries"})
	}
}

// mode: OpenDKIM signs when Mode contains s and verifies when it contains
// v; the default is sv. vouch verifies inbound mail by default
// ([verify]), so a Mode without v turns that off.
func (c *converter) mode() {
	s, set := c.get("Mode")
	mode := "sv"
	if set {
		mode = s.Value
	}
	if strings.Trim(mode, "sv") != "" {
		c.drop("Mode", s, set, fmt.Sprintf("%q has letters other than s and v: OpenDKIM refuses to start", mode))
	}
	if strings.Contains(mode, "v") {
		c.note("Mode", s, set, "verifying (the v in "+mode+"): vouch verifies untrusted inbound mail too ([verify], on by default: one Authentication-Results field with dkim=, spf=, dmarc=; every action accept); of OpenDKIM's verification settings, the On-* actions are converted")
	} else {
		c.verifyOff = true
		c.note("Mode", s, set, "no v: OpenDKIM did not verify, so vouch's verification is turned off ([verify] enabled = false)")
	}
	if !strings.Contains(mode, "s") {
		c.sign = false
		c.drop("Mode", s, set, "OpenDKIM does not sign in mode "+mode+": the signing settings below are commented out")
	}
}

// socket: Socket is vouch's listen, same syntax. For a unix socket,
// OpenDKIM's UMask decided the socket's mode (libmilter binds it under
// that umask); vouch sets socket_mode after binding.
func (c *converter) socket() {
	s, set := c.get("Socket")
	um, umSet := c.get("UMask")
	if !set {
		c.note("Socket", s, false, "OpenDKIM needs a Socket (or -p); vouch listens on its default, inet:8891@localhost")
		if umSet {
			c.drop("UMask", um, true, "it only matters for a unix socket")
		}
		return
	}
	addr, err := sockaddr.Parse(s.Value)
	if err != nil {
		c.drop("Socket", s, true, fmt.Sprintf("vouch cannot use it (%v): vouch listens on its default, inet:8891@localhost", err))
		if umSet {
			c.drop("UMask", um, true, "it only matters for a unix socket")
		}
		return
	}
	c.top = append(c.top, tomlLine{"listen", tomlString(s.Value), from(s)})
	if addr.Network != "unix" {
		if umSet {
			c.drop("UMask", um, true, "it only matters for a unix socket, and Socket is not one")
		}
		return
	}
	why := "a unix socket: its directory must exist and be writable by vouch's user (the systemd unit's sandbox must allow it)"
	if umSet {
		n, _ := parseInt(um.Value)
		if n < 0 || n > 0o777 {
			c.drop("UMask", um, true, "not a umask")
		} else {
			mode := fmt.Sprintf("%04o", 0o777&^n)
			c.top = append(c.top, tomlLine{"socket_mode", tomlString(mode), from(um)})
			why += "; mode " + mode + " as under OpenDKIM, but the socket's group is vouch's: put the MTA's user in group vouch, as in group opendkim before"
		}
	}
	c.note("Socket", s, true, why+"; inet:8891@localhost needs none of this")
}

func (c *converter) authservID() {
	s, set := c.get("AuthservID")
	if !set {
		return
	}
	if s.Value == "HOSTNAME" {
		c.note("AuthservID", s, true, "HOSTNAME: vouch's default authserv_id is the MTA's host name (macro j)")
		return
	}
	c.top = append(c.top, tomlLine{"authserv_id", tomlString(s.Value), from(s)})
}

// nameservers: OpenDKIM's Nameservers is a comma-separated list of
// addresses; vouch wants host:port.
func (c *converter) nameservers() {
	s, set := c.get("Nameservers")
	if !set {
		return
	}
	var servers []string
	for _, a := range strings.Split(s.Value, ",") {
		ip, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			c.drop("Nameservers", s, true, fmt.Sprintf("%q is not an IP address", strings.TrimSpace(a)))
			return
		}
		servers = append(servers, net.JoinHostPort(ip.String(), "53"))
	}
	c.dns = append(c.dns, tomlLine{"servers", tomlList(servers), from(s)})
	c.note("Nameservers", s, true, "vouch uses these resolvers for its inbound screening, not for signing")
}

// internalHosts: a file becomes internal_hosts_file with internal_hosts
// emptied (InternalHosts replaces OpenDKIM's default 127.0.0.1,::1, which
// is also vouch's default); a list becomes internal_hosts.
func (c *converter) internalHosts() {
	s, set := c.get("InternalHosts")
	if !set {
		return
	}
	ds := parseDataset(s.Value)
	value := s.Value
	if ds.kind == "refile" {
		spec, err := ds.refileAsFile()
		if err != nil {
			c.drop("InternalHosts", s, true, fmt.Sprintf("refile: with patterns is not supported (%v); vouch trusts only its default 127.0.0.1 and ::1", err))
			return
		}
		c.note("InternalHosts", s, true, "refile: without patterns matches like a flat file: read as "+spec)
		ds, value = parseDataset(spec), spec
	}
	switch ds.kind {
	case "file":
		c.signing = append(c.signing,
			tomlLine{"internal_hosts", "[]", "InternalHosts replaces OpenDKIM's default 127.0.0.1, ::1"},
			tomlLine{"internal_hosts_file", tomlString(value), from(s)})
	case "csl":
		hosts, _ := ds.keys()
		c.signing = append(c.signing, tomlLine{"internal_hosts", tomlList(hosts), from(s)})
	default:
		c.drop("InternalHosts", s, true, ds.unsupported()+"; vouch trusts only its default 127.0.0.1 and ::1")
	}
}

// tables: the KeyTable and SigningTable are read by vouch as they are, if
// they are flat files or lists (refile: for the SigningTable).
func (c *converter) tables() {
	kt, ktSet := c.get("KeyTable")
	st, stSet := c.get("SigningTable")
	// LDAP data sets are read by vouch as they are; the LDAP options go along.
	ktLDAP, stLDAP := ktSet && parseDataset(kt.Value).kind == "ldap", stSet && parseDataset(st.Value).kind == "ldap"
	defer func() { c.ldapOptions(ktLDAP || stLDAP) }()
	if !ktSet && !stSet {
		return
	}
	var problems []string
	ktValue := kt.Value
	if ktSet && !ktLDAP {
		ds := parseDataset(kt.Value)
		if ds.kind == "refile" {
			if spec, err := ds.refileAsFile(); err != nil {
				c.drop("KeyTable", kt, true, fmt.Sprintf("refile: with patterns is not supported (%v)", err))
				problems = append(problems, "KeyTable")
			} else {
				c.note("KeyTable", kt, true, "refile: without patterns finds keys like a flat file: read as "+spec)
				ktValue = spec
			}
		} else if why := ds.unsupported(); why != "" {
			c.drop("KeyTable", kt, true, why)
			problems = append(problems, "KeyTable")
		}
	}
	if stSet && !stLDAP {
		ds := parseDataset(st.Value)
		if why := ds.unsupported(); why != "" && ds.kind != "refile" {
			c.drop("SigningTable", st, true, why)
			problems = append(problems, "SigningTable")
		}
	}
	switch {
	case stSet && !ktSet:
		c.drop("SigningTable", st, true, "a SigningTable needs a KeyTable: OpenDKIM refuses to start")
		return
	case ktSet && !stSet:
		c.note("KeyTable", kt, true, "a KeyTable without a SigningTable: OpenDKIM refuses to start, vouch loads it but signs nothing with it")
	}
	if len(problems) > 0 {
		// One without the other is of no use: list the one vouch could
		// read too, and leave both out.
		if ktSet && problems[0] != "KeyTable" {
			c.drop("KeyTable", kt, true, "of no use without the SigningTable, which vouch cannot read")
		}
		if stSet && len(problems) == 1 && problems[0] == "KeyTable" {
			c.drop("SigningTable", st, true, "it names keys of the KeyTable, which vouch cannot read")
		}
		return
	}
	c.signing = append(c.signing, tomlLine{"key_table", tomlString(ktValue), from(kt)})
	if stSet {
		c.signing = append(c.signing, tomlLine{"signing_table", tomlString(st.Value), from(st)})
		c.haveKeys = true
	}
}

// domainKeys: Domain, Selector and KeyFile sign mail from the listed
// domains with one key. OpenDKIM ignores them when a KeyTable is set.
func (c *converter) domainKeys() {
	dom, domSet := c.get("Domain")
	sel, selSet := c.get("Selector")
	key, keySet := c.get("KeyFile")
	sub, subSet := c.get("SubDomains")
	subdomains := false
	if subSet {
		subdomains, _ = parseBool(sub.Value)
	}
	if _, ktSet := c.f.Get("KeyTable"); ktSet {
		for _, p := range []struct {
			s   Setting
			set bool
		}{{dom, domSet}, {sel, selSet}, {key, keySet}, {sub, subSet}} {
			if p.set {
				c.drop(p.s.Name, p.s, true, "OpenDKIM ignores it when a KeyTable is set, and so does this configuration")
			}
		}
		return
	}
	if subSet && !domSet {
		c.drop("SubDomains", sub, true, "without Domain it has no effect")
	} else if subSet && !subdomains {
		c.note("SubDomains", sub, true, "no: each domain signs for itself only, as [[signing.key]] does")
	}
	if !domSet && !selSet && !keySet {
		return
	}
	if selSet != keySet || !domSet {
		for _, p := range []struct {
			s   Setting
			set bool
		}{{dom, domSet}, {sel, selSet}, {key, keySet}} {
			if p.set {
				c.drop(p.s.Name, p.s, true, "Domain, Selector and KeyFile go together: OpenDKIM signs nothing with this one alone")
			}
		}
		return
	}
	ds := parseDataset(dom.Value)
	domains, err := ds.keys()
	if err != nil {
		c.drop("Domain", dom, true, fmt.Sprintf("cannot read the domain list: %v", err))
		c.drop("Selector", sel, true, "of no use without the Domain list")
		c.drop("KeyFile", key, true, "of no use without the Domain list")
		return
	}
	if len(domains) == 0 {
		c.drop("Domain", dom, true, "the domain list is empty")
		return
	}
	anyDomain := false
	for _, d := range domains {
		anyDomain = anyDomain || d == "*"
	}
	// vouch's [[signing.key]] matches one domain exactly. "*" (any From
	// domain, d= that domain) and SubDomains (d= the listed parent, i=@it)
	// need a key and a signing table; they are written as csl: lists,
	// which cannot hold a path with a comma.
	if anyDomain || subdomains {
		if strings.Contains(key.Value, ",") {
			if anyDomain {
				c.drop("Domain", dom, true, "\"*\" (any domain) needs a csl: key table, which cannot hold a key path with a comma")
				return
			}
			c.drop("SubDomains", sub, true, "it needs a csl: key table, which cannot hold a key path with a comma; each domain signs for itself only")
		} else {
			c.tableKeys(dom, sel, key, sub, domains, anyDomain, subdomains)
			if subSet {
				c.handled["subdomains"] = true
			}
			return
		}
	}
	for _, d := range domains {
		c.keys = append(c.keys, []tomlLine{
			{"domain", tomlString(strings.ToLower(d)), from(dom)},
			{"selector", tomlString(sel.Value), from(sel)},
			{"private_key", tomlString(key.Value), from(key)},
		})
	}
	c.haveKeys = true
}

// tableKeys writes Domain/Selector/KeyFile as a csl: KeyTable and
// SigningTable. For "*": one key whose domain is "%" (the From domain),
// for every address. For SubDomains: a row per domain for the domain
// itself and one for ".domain" with the identity @domain, which vouch's
// SigningTable lookup tries after the exact domain, nearest parent first,
// as OpenDKIM's SubDomains walk does.
func (c *converter) tableKeys(dom, sel, key, sub Setting, domains []string, anyDomain, subdomains bool) {
	var kt, st []string
	if anyDomain {
		kt = append(kt, "any=%:"+sel.Value+":"+key.Value)
		st = append(st, "*=any")
	} else {
		for _, d := range domains {
			d = strings.ToLower(d)
			kt = append(kt, d+"="+d+":"+sel.Value+":"+key.Value)
			st = append(st, d+"="+d)
			if subdomains {
				st = append(st, "."+d+"="+d+":@"+d)
			}
		}
	}
	stFrom := from(dom)
	if subdomains && !anyDomain {
		stFrom += "; " + from(sub)
	}
	c.signing = append(c.signing,
		tomlLine{"key_table", tomlString("csl:" + strings.Join(kt, ",")), from(sel) + "; " + from(key)},
		tomlLine{"signing_table", tomlString("csl:" + strings.Join(st, ",")), stFrom})
	c.haveKeys = true
	why := "\"*\": mail from any domain is signed with d= its own domain"
	if !anyDomain {
		why = "SubDomains: subdomains are signed with d= the listed domain and i=@that domain"
	}
	c.note("Domain", dom, true, why+"; written as a csl: key table and signing table")
}

func (c *converter) booleans() {
	for _, b := range []struct{ opt, key string }{
		{"MultipleSignatures", "multiple_signatures"},
		{"RequireSafeKeys", "require_safe_keys"},
	} {
		s, set := c.get(b.opt)
		if !set {
			continue
		}
		v, _ := parseBool(s.Value)
		c.signing = append(c.signing, tomlLine{b.key, fmt.Sprint(v), from(s)})
	}
	s, set := c.f.Get("RequireSafeKeys")
	safe := true
	if set {
		safe, _ = parseBool(s.Value)
	}
	if c.haveKeys && safe {
		c.note("RequireSafeKeys", s, set, "vouch applies OpenDKIM's rule (same verdicts); vouch's user must be able to read the keys: OpenDKIM's (owner opendkim) need chown to vouch")
	}
}

// headers converts SignHeaders and OverSignHeaders. In SignHeaders, "*"
// stands for libopendkim's default list, "-name" removes from it and
// "+name" adds to it (dkimf_db_mkarray_base); without "*" the entries are
// the list. OverSignHeaders has no base list. Both are matched as regular
// expressions by libopendkim; vouch matches names.
func (c *converter) headers() {
	var signed []string
	sh, shSet := c.get("SignHeaders")
	custom := false // SignHeaders carried over
	if shSet {
		entries, ok := c.headerEntries(sh)
		if ok {
			custom = true
			signed = c.signHeaders(sh, entries)
			c.signing = append(c.signing, tomlLine{"headers", tomlList(signed), from(sh)})
		}
	}
	if signed == nil {
		signed = config.Default().Signing.Headers
		if !shSet {
			more, less := diff(signed, defaultSignHeaders), diff(defaultSignHeaders, signed)
			why := "vouch's default list applies"
			if len(more) > 0 {
				why += "; it also signs " + strings.Join(more, ", ")
			}
			if len(less) > 0 {
				why += "; OpenDKIM's default also signed " + strings.Join(less, ", ")
			}
			c.note("SignHeaders", sh, false, why)
		}
	}

	ov, ovSet := c.get("OverSignHeaders")
	if !ovSet && custom {
		// vouch signs what it oversigns: its default list would widen
		// what SignHeaders deliberately limits (Zimbra leaves Subject out,
		// for instance, so that a filter after the signer may tag it).
		c.signing = append(c.signing, tomlLine{"oversign", "[]", "OverSignHeaders not set: OpenDKIM oversigned nothing"})
		c.note("OverSignHeaders", ov, false, "oversign = [] keeps the signed fields to SignHeaders; vouch's default would also sign and oversign "+strings.Join(diff(config.Default().Signing.Oversign, signed), ", "))
		return
	}
	if !ovSet {
		c.note("OverSignHeaders", ov, false, "OpenDKIM oversigned nothing by default; vouch's default oversigns "+strings.Join(config.Default().Signing.Oversign, ", "))
		return
	}
	entries, ok := c.headerEntries(ov)
	if !ok {
		return
	}
	var over []string
	for _, e := range entries {
		if e == "*" || strings.HasPrefix(e, "+") || strings.HasPrefix(e, "-") {
			c.note("OverSignHeaders", ov, true, fmt.Sprintf("%q dropped: OverSignHeaders has no default list to add to or remove from", e))
			continue
		}
		over = appendHeader(over, e)
	}
	if extra := diff(over, signed); len(extra) > 0 {
		c.note("OverSignHeaders", ov, true, strings.Join(extra, ", ")+" not in the signed list: vouch signs every instance and one more (OpenDKIM only listed the name once more)")
	}
	c.signing = append(c.signing, tomlLine{"oversign", tomlList(over), from(ov)})
	def := config.Default().Signing.Oversign
	if len(diff(def, over)) > 0 {
		c.note("OverSignHeaders", ov, true, "carried over as it is; vouch's default would oversign "+strings.Join(def, ", ")+": delete the oversign line to use it")
	}
}

// headerEntries reads the data set of SignHeaders or OverSignHeaders and
// drops names vouch cannot match.
func (c *converter) headerEntries(s Setting) ([]string, bool) {
	ds := parseDataset(s.Value)
	entries, err := ds.keys()
	if err != nil {
		c.drop(s.Name, s, true, fmt.Sprintf("cannot read it (%v): vouch's default applies", err))
		return nil, false
	}
	var out []string
	for _, e := range entries {
		name := strings.TrimLeft(e, "+-")
		if e != "*" && (name == "" || strings.ContainsAny(name, ".*[]()|?+^$\\{}:") || strings.IndexFunc(name, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0) {
			c.drop(s.Name, s, true, fmt.Sprintf("%q dropped: libopendkim matches entries as regular expressions, vouch matches field names", e))
			continue
		}
		out = append(out, e)
	}
	return out, true
}

func (c *converter) signHeaders(s Setting, entries []string) []string {
	var list []string
	star := false
	for _, e := range entries {
		star = star || e == "*"
	}
	if star {
		minus := map[string]bool{}
		for _, e := range entries {
			if strings.HasPrefix(e, "-") {
				minus[strings.ToLower(e[1:])] = true
			}
		}
		for _, h := range defaultSignHeaders {
			if !minus[h] {
				list = appendHeader(list, h)
			}
		}
		for _, e := range entries {
			switch {
			case strings.HasPrefix(e, "+"):
				list = appendHeader(list, e[1:])
			case e != "*" && !strings.HasPrefix(e, "-"):
				c.note("SignHeaders", s, true, fmt.Sprintf("%q ignored: next to * only +name and -name count, as in OpenDKIM", e))
			}
		}
	} else {
		for _, e := range entries {
			if strings.HasPrefix(e, "+") || strings.HasPrefix(e, "-") {
				c.note("SignHeaders", s, true, fmt.Sprintf("%q ignored: +name and -name only count next to *", e))
				continue
			}
			list = appendHeader(list, e)
		}
	}
	if len(diff([]string{"From"}, list)) > 0 {
		list = append([]string{"From"}, list...)
		c.note("SignHeaders", s, true, "From added: it must be signed (RFC 6376 §5.4); OpenDKIM refuses to start without it")
	}
	return list
}

func (c *converter) signatureTTL() {
	s, set := c.get("SignatureTTL")
	if !set {
		return
	}
	n, _ := parseInt(s.Value)
	switch {
	case n < 0:
		c.drop("SignatureTTL", s, true, "negative")
	case n == 0:
		c.note("SignatureTTL", s, true, "0: no x= tag, as vouch's default")
	case n > 0:
		c.signing = append(c.signing, tomlLine{"signature_ttl", tomlString(fmt.Sprintf("%ds", n)), from(s)})
	}
}

// canonicalization: OpenDKIM's default is simple/simple, and a single
// word sets the header canonicalization only (the body stays simple).
func (c *converter) canonicalization() {
	s, set := c.get("Canonicalization")
	value := "simple/simple"
	if set {
		value = strings.ToLower(s.Value)
		if !strings.Contains(value, "/") {
			value += "/simple"
		}
	}
	if value == "relaxed/relaxed" && set {
		c.note("Canonicalization", s, true, "relaxed/relaxed, as vouch always signs")
	}
	if value != "relaxed/relaxed" {
		c.drop("Canonicalization", s, set, "vouch always signs relaxed/relaxed (OpenDKIM: "+value+"); receivers verify either, relaxed survives more changes in transit")
	}
}

func (c *converter) algorithm() {
	s, set := c.get("SignatureAlgorithm")
	if !set {
		return
	}
	switch strings.ToLower(s.Value) {
	case "rsa-sha256":
		c.note("SignatureAlgorithm", s, true, "what vouch signs with RSA keys (Ed25519 keys sign ed25519-sha256)")
	case "ed25519-sha256":
		c.note("SignatureAlgorithm", s, true, "vouch takes the algorithm from the key: Ed25519 keys sign ed25519-sha256, RSA keys rsa-sha256")
	case "rsa-sha1":
		c.drop("SignatureAlgorithm", s, true, "vouch signs rsa-sha256 (or ed25519-sha256), never rsa-sha1 (RFC 8301)")
	default:
		c.drop("SignatureAlgorithm", s, true, "unknown algorithm: OpenDKIM refuses to start")
	}
}

// appendHeader adds a field name, canonically spelt, unless present.
func appendHeader(list []string, name string) []string {
	if len(diff([]string{name}, list)) == 0 {
		return list
	}
	return append(list, canonHeader(name))
}

// canonHeader spells a field name the usual way (Message-ID, not Message-Id).
func canonHeader(name string) string {
	canon := textproto.CanonicalMIMEHeaderKey(name)
	for _, special := range []string{"Message-ID", "MIME-Version", "Content-ID", "Resent-Message-ID"} {
		if strings.EqualFold(canon, special) {
			return special
		}
	}
	return canon
}

// diff is a minus b, case-insensitively, canonically spelt.
func diff(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[strings.ToLower(x)] = true
	}
	var out []string
	for _, x := range a {
		if !in[strings.ToLower(x)] {
			out = append(out, canonHeader(x))
		}
	}
	return out
}

func sortItems(items []Item) {
	sort.SliceStable(items, func(i, j int) bool { return items[i].pos < items[j].pos })
}
