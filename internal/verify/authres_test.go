package verify

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

func TestFormatAuthResults(t *testing.T) {
	full := Results{
		DKIM: []DKIMResult{
			{Status: Pass, Domain: "example.com", Selector: "sel", Algorithm: "rsa-sha256", B: "AbCd+123"},
			{Status: Fail, Reason: "body hash did not verify", Domain: "esp.example.net", Selector: "s1", Algorithm: "ed25519-sha256", B: "Zz/9=+ab"},
		},
		SPF:   SPFResult{Status: Pass, Identity: "mailfrom", Domain: "example.com", Sender: "bounce@example.com"},
		DMARC: DMARCResult{Status: Pass, FromDomain: "example.com", Policy: DispReject, Disposition: DispNone},
	}
	cases := []struct {
		name  string
		id    string
		iprev IPRev
		r     Results
		want  string
	}{
		{"nothing", "mx.example.org", IPRev{}, Results{}, " mx.example.org; none"},
		{"everything", "mx.example.org", IPRev{Result: Pass, IP: netip.MustParseAddr("192.0.2.1")}, full,
			" mx.example.org;\n" +
				"\tdkim=pass header.d=example.com header.s=sel header.a=rsa-sha256 header.b=AbCd+123;\n" +
				"\tdkim=fail reason=\"body hash did not verify\" header.d=esp.example.net header.s=s1 header.a=ed25519-sha256 header.b=\"Zz/9=+ab\";\n" +
				"\tspf=pass smtp.mailfrom=bounce@example.com;\n" +
				"\tdmarc=pass (p=reject dis=none) header.from=example.com;\n" +
				"\tiprev=pass policy.iprev=192.0.2.1"},
		{"no signature, IPv6, HELO identity", "mx.example.org", IPRev{Result: Fail, IP: netip.MustParseAddr("2001:db8::1")},
			Results{SPF: SPFResult{Status: SoftFail, Identity: "helo", HELO: "mail.example.net", Domain: "mail.example.net", Reason: "matched all"},
				DMARC: DMARCResult{Status: Fail, FromDomain: "example.com", Policy: DispReject, Disposition: DispQuarantine, Reason: "no aligned DKIM or SPF pass (p=reject not applied: outside pct=50)"}},
			" mx.example.org;\n" +
				"\tdkim=none;\n" +
				"\tspf=softfail reason=\"matched all\" smtp.helo=mail.example.net;\n" +
				"\tdmarc=fail reason=\"no aligned DKIM or SPF pass [p=reject not applied: outside pct=50]\" (p=reject dis=quarantine) header.from=example.com;\n" +
				"\tiprev=fail policy.iprev=\"2001:db8::1\""},
		{"DMARC none, no header.from", "mx", IPRev{},
			Results{DMARC: DMARCResult{Status: PermError, Reason: "no From header"}},
			" mx;\n\tdkim=none;\n\tdmarc=permerror reason=\"no From header\""},
		{"mapped IPv4, iprev only (no verification)", "mx", IPRev{Result: TempError, IP: netip.MustParseAddr("::ffff:192.0.2.7")}, Results{},
			" mx;\n\tiprev=temperror policy.iprev=192.0.2.7"},
		{"quoted local part and id", "mx.example.org/1", IPRev{},
			Results{SPF: SPFResult{Status: Fail, Identity: "mailfrom", Sender: `"john doe"@example.com`, Reason: `matched "all"; (really)`}},
			" \"mx.example.org/1\";\n\tdkim=none;\n\tspf=fail reason=\"matched 'all', [really]\" smtp.mailfrom=\"\\\"john doe\\\"@example.com\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := FormatAuthResults(tc.id, tc.iprev, tc.r)
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestPValueQuoting(t *testing.T) {
	for _, tc := range [][2]string{
		{"example.com", "example.com"},
		{"192.0.2.1", "192.0.2.1"},
		{"2001:db8::1", `"2001:db8::1"`},
		{"user@example.com", "user@example.com"},
		{"first.last+tag@example.com", "first.last+tag@example.com"},
		{"o'neil@example.com", "o'neil@example.com"},
		{`a;b@example.com`, `"a;b@example.com"`},
		{`"john doe"@example.com`, `"\"john doe\"@example.com"`},
		{"a=b@example.com", `"a=b@example.com"`},
		{"a/b@example.com", `"a/b@example.com"`},
		{".a@example.com", `".a@example.com"`},
		{"a..b@example.com", `"a..b@example.com"`},
		{"a@[192.0.2.1]", `"a@[192.0.2.1]"`},
		{"a@", `"a@"`},
		{"AbCd/123+xyz", `"AbCd/123+xyz"`},
		{"AbCd+123", "AbCd+123"},
		{"back\\slash", `"back\\slash"`},
		{"ünï@example.com", `"??n??@example.com"`},
		{"", `""`},
	} {
		if got := pvalue(tc[0]); got != tc[1] {
			t.Errorf("pvalue(%q) = %s, want %s", tc[0], got, tc[1])
		}
	}
}

// arResult is one resinfo as parseAR reads it.
type arResult struct {
	method, result, reason string
	props                  map[string]string
}

// parseAR is a strict reader of RFC 8601 §2.2 for what FormatAuthResults
// writes: authserv-id; then resinfo separated by ";", CFWS (comments,
// folding) anywhere between elements, values as tokens or quoted-strings
// (unescaped here). An unquoted value with a character that needs quoting
// is an error, which is what the quoting test is about.
func parseAR(v string) (string, []arResult, error) {
	p := &arParser{s: v}
	if err := p.cfws(); err != nil {
		return "", nil, err
	}
	// authserv-id = value = token / quoted-string (no local@domain form).
	id, err := p.value()
	if err != nil {
		return "", nil, fmt.Errorf("authserv-id: %v", err)
	}
	if !strings.HasPrefix(p.s[p.idStart:], `"`) && !isRFC2045Token(id) {
		return "", nil, fmt.Errorf("authserv-id %q is neither a token nor a quoted-string", id)
	}
	var out []arResult
	for {
		if err := p.cfws(); err != nil {
			return id, out, err
		}
		if p.eof() {
			return id, out, nil
		}
		if !p.consume(';') {
			return id, out, fmt.Errorf("want ; at %q", p.s[p.i:])
		}
		p.cfws()
		if strings.HasPrefix(p.s[p.i:], "none") && len(out) == 0 {
			p.i += 4
			continue
		}
		var r arResult
		r.method = p.keyword()
		p.cfws()
		if r.method == "" || !p.consume('=') {
			return id, out, fmt.Errorf("want method= at %q", p.s[p.i:])
		}
		p.cfws()
		r.result = p.keyword()
		r.props = map[string]string{}
		for {
			if err := p.cfws(); err != nil {
				return id, out, err
			}
			if p.eof() || p.peek() == ';' {
				break
			}
			name := p.keyword()
			if p.consume('.') {
				name += "." + p.keyword()
			}
			p.cfws()
			if name == "" || !p.consume('=') {
				return id, out, fmt.Errorf("want property= at %q", p.s[p.i:])
			}
			p.cfws()
			val, err := p.value()
			if err != nil {
				return id, out, fmt.Errorf("%s: %v", name, err)
			}
			if name == "reason" {
				r.reason = val
			} else {
				r.props[name] = val
			}
		}
		out = append(out, r)
	}
}

type arParser struct {
	s       string
	i       int
	idStart int // where the last value began
}

func (p *arParser) eof() bool  { return p.i >= len(p.s) }
func (p *arParser) peek() byte { return p.s[p.i] }
func (p *arParser) consume(c byte) bool {
	if !p.eof() && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// cfws skips white space, folding and (nested) comments; an unterminated
// comment is an error.
func (p *arParser) cfws() error {
	for !p.eof() {
		switch c := p.peek(); {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.i++
		case c == '(':
			for depth := 0; depth > 0 || p.i < len(p.s) && p.peek() == '('; p.i++ {
				if p.i >= len(p.s) {
					return fmt.Errorf("unterminated comment")
				}
				switch p.s[p.i] {
				case '\\':
					p.i++
				case '(':
					depth++
				case ')':
					depth--
				}
			}
		default:
			return nil
		}
	}
	return nil
}

// isRFC2045Token is the test's own reading of RFC 2045 §5.1: 1*<any
// US-ASCII CHAR except SPACE, CTLs, or tspecials>.
func isRFC2045Token(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c)) {
			return false
		}
	}
	return s != ""
}

func (p *arParser) keyword() string {
	start := p.i
	for !p.eof() && (isAlnum(p.peek()) || p.peek() == '-' || p.peek() == '_') {
		p.i++
	}
	return p.s[start:p.i]
}

// value reads a token, a local-part@domain or a quoted-string.
func (p *arParser) value() (string, error) {
	p.idStart = p.i
	if p.consume('"') {
		var b strings.Builder
		for !p.eof() {
			c := p.s[p.i]
			p.i++
			switch c {
			case '\\':
				if p.eof() {
					return "", fmt.Errorf("dangling backslash")
				}
				b.WriteByte(p.s[p.i])
				p.i++
			case '"':
				return b.String(), nil
			case '\r', '\n':
				return "", fmt.Errorf("line break in quoted-string")
			default:
				b.WriteByte(c)
			}
		}
		return "", fmt.Errorf("unterminated quoted-string")
	}
	start := p.i
	for !p.eof() && !strings.ContainsRune(" \t\r\n;()", rune(p.peek())) {
		p.i++
	}
	v := p.s[start:p.i]
	if !isRFC2045Token(v) && !isPlainAddress(v) {
		return "", fmt.Errorf("%q must be quoted", v)
	}
	return v, nil
}

// TestAuthResultsParseBack parses FormatAuthResults' output with a strict
// RFC 8601 reader (quoting) and with go-msgauth's authres.Parse (what
// downstream Go code uses); every value must come back as it went in.
func TestAuthResultsParseBack(t *testing.T) {
	r := Results{
		DKIM: []DKIMResult{
			{Status: Pass, Domain: "example.com", Selector: "sel-1", Algorithm: "rsa-sha256", B: "Ab/Cd+12=3"},
			{Status: PermError, Reason: `key "revoked"; see (notes)`, Domain: "example.org", Selector: "s", Algorithm: "rsa-sha256", B: "xyz"},
			{Status: Policy, Reason: "key is too short: want 1024 bits, has 512 bits", Domain: "weak.example", Selector: "old", Algorithm: "rsa-sha256", B: "Qq"},
		},
		SPF:   SPFResult{Status: Fail, Identity: "mailfrom", Sender: "we;ird@example.com", Domain: "example.com", Reason: "matched all"},
		DMARC: DMARCResult{Status: Fail, FromDomain: "example.com", Policy: DispReject, Disposition: DispReject, Reason: "no aligned DKIM or SPF pass"},
	}
	ip := netip.MustParseAddr("2001:db8::25")
	v := FormatAuthResults("mx.example.org", IPRev{Result: Pass, IP: ip}, r)

	id, got, err := parseAR(v)
	if err != nil {
		t.Fatalf("%v in\n%s", err, v)
	}
	want := []arResult{
		{"dkim", "pass", "", map[string]string{"header.d": "example.com", "header.s": "sel-1", "header.a": "rsa-sha256", "header.b": "Ab/Cd+12=3"}},
		{"dkim", "permerror", `key 'revoked', see [notes]`, map[string]string{"header.d": "example.org", "header.s": "s", "header.a": "rsa-sha256", "header.b": "xyz"}},
		{"dkim", "policy", "key is too short: want 1024 bits, has 512 bits", map[string]string{"header.d": "weak.example", "header.s": "old", "header.a": "rsa-sha256", "header.b": "Qq"}},
		{"spf", "fail", "matched all", map[string]string{"smtp.mailfrom": "we;ird@example.com"}},
		{"dmarc", "fail", "no aligned DKIM or SPF pass", map[string]string{"header.from": "example.com"}},
		{"iprev", "pass", "", map[string]string{"policy.iprev": "2001:db8::25"}},
	}
	if id != "mx.example.org" || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("strict parse of\n%s\ngot  %s %v\nwant %v", v, id, got, want)
	}

	// The reader is strict enough to catch a missing quote.
	if _, _, err := parseAR(" mx; iprev=pass policy.iprev=2001:db8::1"); err == nil {
		t.Error("parseAR accepts an unquoted IPv6 address")
	}

	// go-msgauth splits on ";" and whitespace and keeps quotes: give it
	// the results it can read (no spaces or ";" inside values).
	simple := Results{
		DKIM:  []DKIMResult{{Status: Pass, Domain: "example.com", Selector: "sel", Algorithm: "rsa-sha256", B: "Ab/Cd+12"}},
		SPF:   SPFResult{Status: Pass, Identity: "mailfrom", Sender: "user@example.com", Domain: "example.com"},
		DMARC: DMARCResult{Status: Pass, FromDomain: "example.com"},
	}
	v = FormatAuthResults("mx.example.org", IPRev{Result: Pass, IP: netip.MustParseAddr("192.0.2.1")}, simple)
	id, results, err := authres.Parse(v)
	if err != nil || id != "mx.example.org" || len(results) != 4 {
		t.Fatalf("authres.Parse(%q) = %q %d results, %v", v, id, len(results), err)
	}
	unq := func(s string) string { return strings.Trim(s, `"`) }
	if d, ok := results[0].(*authres.DKIMResult); !ok || d.Value != authres.ResultPass || d.Domain != "example.com" {
		t.Errorf("dkim %+v", results[0])
	}
	if s, ok := results[1].(*authres.SPFResult); !ok || s.Value != authres.ResultPass || s.From != "user@example.com" {
		t.Errorf("spf %+v", results[1])
	}
	if d, ok := results[2].(*authres.DMARCResult); !ok || d.Value != authres.ResultPass || d.From != "example.com" {
		t.Errorf("dmarc %+v", results[2])
	}
	if i, ok := results[3].(*authres.IPRevResult); !ok || i.Value != authres.ResultPass || unq(i.IP) != "192.0.2.1" {
		t.Errorf("iprev %+v", results[3])
	}
	// A quoted IPv6 address comes back with its quotes, which is as far
	// as go-msgauth goes.
	_, results, err = authres.Parse(FormatAuthResults("mx", IPRev{Result: Pass, IP: ip}, Results{}))
	if err != nil || len(results) != 1 || unq(results[0].(*authres.IPRevResult).IP) != "2001:db8::25" {
		t.Errorf("IPv6: %+v %v", results, err)
	}
}

// FuzzFormatAuthResults: whatever the values (a forger controls the From
// domain, the MAIL FROM, the selector, b=...), the formatted header parses
// with the strict RFC 8601 reader above, names the authserv-id it was
// given, parses back to the same method=result pairs and property values,
// and is recognised as ours by ClaimsAuthServID (so a later hop of ours
// removes it).
func FuzzFormatAuthResults(f *testing.F) {
	f.Add("mx.example.org", "example.com", "sel", "AbCd/12+=", "body hash did not verify", "bounce@example.com", "mail.example.net", "example.com", "no aligned pass", []byte{1, 2, 3, 4, 5, 6, 7, 192, 0, 2, 1})
	f.Add("mx.example.org/1", `"john doe"@example.com`, "s;1", "x", `a "quoted"; (reason)`, "we;ird@example.com", "", "", "", []byte{0, 9, 0, 3, 2, 1, 0})
	f.Add("a@b", "ünï.example", "sel\r\n", "b\x00", "\xff", "@example.com", "[192.0.2.1]", "x\"y", "r", []byte{7, 7, 7, 7, 7, 7, 7, 32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add("", "", "", "", "", "", "", "", "", []byte{})
	statuses := []Status{"", None, Pass, Fail, SoftFail, Neutral, Policy, TempError, PermError}
	disps := []Disposition{"", DispNone, DispQuarantine, DispReject}
	f.Fuzz(func(t *testing.T, id, domain, selector, b, reason, sender, helo, fromDomain, dmarcReason string, pick []byte) {
		at := func(i int) byte {
			if i < len(pick) {
				return pick[i]
			}
			return 0
		}
		st := func(i int) Status { return statuses[int(at(i))%len(statuses)] }
		r := Results{SPF: SPFResult{Status: st(2), Identity: "mailfrom", Sender: sender, HELO: helo, Reason: reason},
			DMARC: DMARCResult{Status: st(3), FromDomain: fromDomain, Reason: dmarcReason,
				Policy: disps[int(at(4))%len(disps)], Disposition: disps[int(at(5))%len(disps)]}}
		if at(6)%2 == 1 {
			r.SPF.Identity = "helo"
		}
		for i := range int(at(0) % 3) {
			r.DKIM = append(r.DKIM, DKIMResult{Status: statuses[1+int(at(1+i))%(len(statuses)-1)], Reason: reason, Domain: domain, Selector: selector, Algorithm: "rsa-sha256", B: b})
		}
		var iprev IPRev
		if len(pick) > 7 {
			iprev.Result = st(7)
			if a, ok := netip.AddrFromSlice(pick[8:min(len(pick), 24)]); ok {
				iprev.IP = a
			}
		}
		v := FormatAuthResults(id, iprev, r)
		gotID, got, err := parseAR(v)
		if err != nil {
			t.Fatalf("strict parse: %v in\n%s", err, v)
		}
		if gotID != sevenBit(id) {
			t.Fatalf("authserv-id %q, want %q, in\n%s", gotID, sevenBit(id), v)
		}
		if !ClaimsAuthServID(v, sevenBit(id)) {
			t.Fatalf("ClaimsAuthServID does not recognise our own header\n%s", v)
		}

		// What must come back, built from the inputs.
		var want []arResult
		prop := func(m map[string]string, k, v string) {
			if v != "" {
				m[k] = sevenBit(v)
			}
		}
		if len(r.DKIM) == 0 && (r.SPF.Status != "" || r.DMARC.Status != "") {
			want = append(want, arResult{method: "dkim", result: "none", props: map[string]string{}})
		}
		for _, d := range r.DKIM {
			p := map[string]string{}
			prop(p, "header.d", d.Domain)
			prop(p, "header.s", d.Selector)
			prop(p, "header.a", d.Algorithm)
			prop(p, "header.b", d.B)
			want = append(want, arResult{method: "dkim", result: string(d.Status), props: p})
		}
		if r.SPF.Status != "" {
			p := map[string]string{}
			if r.SPF.Identity == "helo" {
				prop(p, "smtp.helo", helo)
			} else {
				prop(p, "smtp.mailfrom", sender)
			}
			want = append(want, arResult{method: "spf", result: string(r.SPF.Status), props: p})
		}
		if r.DMARC.Status != "" {
			p := map[string]string{}
			prop(p, "header.from", fromDomain)
			want = append(want, arResult{method: "dmarc", result: string(r.DMARC.Status), props: p})
		}
		if iprev.Result != "" {
			p := map[string]string{}
			if iprev.IP.IsValid() {
				p["policy.iprev"] = iprev.IP.Unmap().String()
			}
			want = append(want, arResult{method: "iprev", result: string(iprev.Result), props: p})
		}
		if len(got) != len(want) {
			t.Fatalf("%d results, want %d, in\n%s", len(got), len(want), v)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.method != w.method || g.result != w.result || fmt.Sprint(g.props) != fmt.Sprint(w.props) {
				t.Fatalf("result %d: %s=%s %v, want %s=%s %v, in\n%s", i, g.method, g.result, g.props, w.method, w.result, w.props, v)
			}
			if strings.ContainsAny(g.reason, ";()\"\\") || len(g.reason) > 100 {
				t.Fatalf("result %d: reason %q is not sanitized", i, g.reason)
			}
		}
	})
}

// sevenBit is what a value becomes in the 7-bit header: control
// characters and 8-bit bytes are "?".
func sevenBit(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}
