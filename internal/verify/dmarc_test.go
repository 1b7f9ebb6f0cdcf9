package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"vouch/internal/dnstest"
	"vouch/internal/mailtext"
	"vouch/internal/resolver"
)

func TestOrgDomain(t *testing.T) {
	for _, tc := range [][2]string{
		{"example.com", "example.com"},
		{"mail.example.com", "example.com"},
		{"a.b.c.example.com.", "example.com"},
		{"EXAMPLE.COM", "example.com"},
		{"example.co.uk", "example.co.uk"},
		{"mail.example.co.uk", "example.co.uk"},
		{"co.uk", "co.uk"}, // a public suffix is its own
		{"com", "com"},
		{"user.github.io", "user.github.io"}, // private section of the list
		{"www.user.github.io", "user.github.io"},
		{"sub.example.test", "example.test"}, // not in the list: the default rule "*"
		{"city.kawasaki.jp", "city.kawasaki.jp"},
		{"a.b.city.kawasaki.jp", "city.kawasaki.jp"}, // an exception rule: !city.kawasaki.jp
	} {
		if got := OrgDomain(tc[0]); got != tc[1] {
			t.Errorf("OrgDomain(%q) = %q, want %q", tc[0], got, tc[1])
		}
	}
}

func TestAligned(t *testing.T) {
	for _, tc := range []struct {
		a, b    string
		relaxed bool
		strict  bool
	}{
		{"example.com", "example.com", true, true},
		{"Example.COM.", "example.com", true, true},
		{"mail.example.com", "example.com", true, false},
		{"example.com", "news.example.com", true, false},
		{"a.example.com", "b.example.com", true, false},
		{"example.com", "example.org", false, false},
		{"example.co.uk", "other.co.uk", false, false},
		{"a.example.co.uk", "example.co.uk", true, false},
		{"badexample.com", "example.com", false, false},
		{"", "example.com", false, false},
		{"", "", false, false},
	} {
		if got := Aligned(tc.a, tc.b, false); got != tc.relaxed {
			t.Errorf("relaxed %q %q: %v", tc.a, tc.b, got)
		}
		if got := Aligned(tc.a, tc.b, true); got != tc.strict {
			t.Errorf("strict %q %q: %v", tc.a, tc.b, got)
		}
	}
}

func TestParseDMARC(t *testing.T) {
	cases := []struct {
		txt      string
		want     DMARCRecord // Warnings compared by count
		warnings int
		err      string
	}{
		{txt: "v=DMARC1; p=reject", want: DMARCRecord{Policy: DispReject, ADKIM: "r", ASPF: "r", Pct: 100}},
		{txt: "v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20;rua=mailto:a@example.com,mailto:b@example.com!10m;ruf=mailto:f@example.com",
			want: DMARCRecord{Policy: DispQuarantine, SubdomainPolicy: DispNone, ADKIM: "s", ASPF: "s", Pct: 20,
				RUA: []string{"mailto:a@example.com", "mailto:b@example.com!10m"}, RUF: []string{"mailto:f@example.com"}}},
		{txt: " v = DMARC1 ; P = Reject ; ", want: DMARCRecord{Policy: DispReject, ADKIM: "r", ASPF: "r", Pct: 100}},
		{txt: "v=DMARC1; p=none; pct=150; adkim=x; fo=1; rf=afrf; foo=bar", want: DMARCRecord{Policy: DispNone, ADKIM: "r", ASPF: "r", Pct: 100, FO: "1"}, warnings: 2},
		{txt: "v=DMARC1; p=none; garbage", want: DMARCRecord{Policy: DispNone, ADKIM: "r", ASPF: "r", Pct: 100}, warnings: 1},
		{txt: "v=DMARC1; p=reject; p=none", want: DMARCRecord{Policy: DispReject, ADKIM: "r", ASPF: "r", Pct: 100}, warnings: 1},
		// §6.6.3: no valid p= but a valid rua= reads as p=none.
		{txt: "v=DMARC1; rua=mailto:r@example.com", want: DMARCRecord{Policy: DispNone, ADKIM: "r", ASPF: "r", Pct: 100, RUA: []string{"mailto:r@example.com"}}, warnings: 1},
		{txt: "v=DMARC1; p=bogus; rua=mailto:r@example.com", want: DMARCRecord{Policy: DispNone, ADKIM: "r", ASPF: "r", Pct: 100, RUA: []string{"mailto:r@example.com"}}, warnings: 1},
		{txt: "v=DMARC1; p=reject; sp=bogus; rua=mailto:r@example.com", want: DMARCRecord{Policy: DispNone, ADKIM: "r", ASPF: "r", Pct: 100, RUA: []string{"mailto:r@example.com"}}, warnings: 1},
		{txt: "v=DMARC1", err: "no valid p="},
		{txt: "v=DMARC1; p=bogus", err: "no valid p="},
		{txt: "v=DMARC1; p=reject; sp=bogus", err: "invalid sp="},
		{txt: "v=DMARC1; rua=not a uri", err: "no valid p="},
		{txt: "v=spf1 -all", err: ErrNotDMARC.Error()},
		{txt: "p=reject; v=DMARC1", err: ErrNotDMARC.Error()},
		{txt: "v=DMARC2; p=reject", err: ErrNotDMARC.Error()},
		{txt: "v=dmarc1; p=reject", err: ErrNotDMARC.Error()},
	}
	for _, tc := range cases {
		got, err := ParseDMARC(tc.txt)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want error %q", tc.txt, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.txt, err)
			continue
		}
		if len(got.Warnings) != tc.warnings {
			t.Errorf("%q: warnings %q, want %d", tc.txt, got.Warnings, tc.warnings)
		}
		got.Warnings = nil
		if got.Policy != tc.want.Policy || got.SubdomainPolicy != tc.want.SubdomainPolicy || got.ADKIM != tc.want.ADKIM ||
			got.ASPF != tc.want.ASPF || got.Pct != tc.want.Pct || got.FO != tc.want.FO || !slices.Equal(got.RUA, tc.want.RUA) || !slices.Equal(got.RUF, tc.want.RUF) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.txt, *got, tc.want)
		}
	}
}

// fakeTXT is a TXTResolver over a map; a name mapped to nil is a
// temporary failure.
type fakeTXT map[string][]string

func (f fakeTXT) TXT(_ context.Context, name string) ([]string, resolver.Status, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	txts, ok := f[name]
	switch {
	case !ok:
		return nil, resolver.NXDomain, nil
	case txts == nil:
		return nil, 0, &resolver.TempError{Name: name, Type: "TXT", Reason: "SERVFAIL"}
	}
	return txts, resolver.Found, nil
}

func TestLookupDMARC(t *testing.T) {
	res := fakeTXT{
		"_dmarc.example.com":        {"v=DMARC1; p=reject; sp=quarantine"},
		"_dmarc.own.example.com":    {"v=DMARC1; p=none"},
		"_dmarc.spf.example.net":    {"v=spf1 -all", "v=DMARC1; p=quarantine", "unrelated"},
		"_dmarc.two.test":           {"v=DMARC1; p=none", "v=DMARC1; p=reject"},
		"_dmarc.broken.test":        {"v=DMARC1; p=whatever"},
		"_dmarc.temp.test":          nil,
		"_dmarc.example.org":        nil,
		"_dmarc.other.example.test": {"not dmarc"},
		"_dmarc.example.test":       {"v=DMARC1; p=reject"},
	}
	cases := []struct {
		domain string
		policy Disposition // "" none found
		at     string
		err    string // "temp" for a temporary error
	}{
		{"example.com", DispReject, "example.com", ""},
		{"mail.example.com", DispReject, "example.com", ""},        // the org domain's record
		{"own.example.com", DispNone, "own.example.com", ""},       // its own record wins
		{"a.b.own.example.com", DispReject, "example.com", ""},     // only the exact and the org domain are asked
		{"spf.example.net", DispQuarantine, "spf.example.net", ""}, // other TXT records are skipped
		{"nothing.example.net", "", "", ""},
		{"two.test", "", "", "2 DMARC records"},
		{"broken.test", "", "", "no valid p="},
		{"temp.test", "", "", "temp"},
		{"sub.example.org", "", "", "temp"}, // the org domain lookup fails
		{"other.example.test", DispReject, "example.test", ""},
	}
	for _, tc := range cases {
		rec, at, err := LookupDMARC(context.Background(), res, tc.domain)
		switch {
		case tc.err == "temp":
			if !resolver.IsTemporary(err) {
				t.Errorf("%s: %v, want a temporary error", tc.domain, err)
			}
		case tc.err != "":
			if err == nil || resolver.IsTemporary(err) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.domain, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.domain, err)
		case tc.policy == "" && rec != nil:
			t.Errorf("%s: found %+v at %s", tc.domain, rec, at)
		case tc.policy != "" && (rec == nil || rec.Policy != tc.policy || at != tc.at):
			t.Errorf("%s: %+v at %q, want p=%s at %s", tc.domain, rec, at, tc.policy, tc.at)
		}
	}
}

func pass(d string) DKIMResult { return DKIMResult{Status: Pass, Domain: d, Selector: "s"} }
func spfPass(d string) SPFResult {
	return SPFResult{Status: Pass, Identity: "mailfrom", Domain: d, Sender: "bounce@" + d}
}

// TestEvaluateDMARC is alignment and disposition: relaxed and strict, DKIM
// and SPF, sp= for subdomains, pct= sampling, temporary errors.
func TestEvaluateDMARC(t *testing.T) {
	rec := func(txt string) *DMARCRecord {
		r, err := ParseDMARC(txt)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	reject := rec("v=DMARC1; p=reject")
	strict := rec("v=DMARC1; p=reject; adkim=s; aspf=s")
	withSP := rec("v=DMARC1; p=reject; sp=quarantine")
	pct50 := rec("v=DMARC1; p=reject; pct=50")
	q50 := rec("v=DMARC1; p=quarantine; pct=50")
	pct0 := rec("v=DMARC1; p=reject; pct=0")
	none := rec("v=DMARC1; p=none")

	type tc struct {
		name     string
		from     string
		rec      *DMARCRecord
		at       string
		dkim     []DKIMResult
		spf      SPFResult
		roll     int // what Rand(100) returns
		status   Status
		policy   Disposition
		disp     Disposition
		alignedD string
		alignedS string
	}
	cases := []tc{
		{name: "no record", from: "example.com", status: None},
		{name: "DKIM exact", from: "example.com", rec: reject, at: "example.com", dkim: []DKIMResult{pass("example.com")}, status: Pass, policy: DispReject, disp: DispNone, alignedD: "example.com"},
		{name: "DKIM relaxed subdomain", from: "example.com", rec: reject, at: "example.com", dkim: []DKIMResult{pass("mail.example.com")}, status: Pass, policy: DispReject, disp: DispNone, alignedD: "mail.example.com"},
		{name: "DKIM strict subdomain fails", from: "example.com", rec: strict, at: "example.com", dkim: []DKIMResult{pass("mail.example.com")}, status: Fail, policy: DispReject, disp: DispReject},
		{name: "DKIM strict exact", from: "example.com", rec: strict, at: "example.com", dkim: []DKIMResult{pass("EXAMPLE.com")}, status: Pass, policy: DispReject, disp: DispNone, alignedD: "EXAMPLE.com"},
		{name: "DKIM other domain", from: "example.com", rec: reject, at: "example.com", dkim: []DKIMResult{pass("esp.example.net")}, status: Fail, policy: DispReject, disp: DispReject},
		{name: "DKIM aligned but failed", from: "example.com", rec: reject, at: "example.com", dkim: []DKIMResult{{Status: Fail, Domain: "example.com"}}, status: Fail, policy: DispReject, disp: DispReject},
		{name: "DKIM second signature aligned", from: "example.com", rec: reject, at: "example.com", dkim: []DKIMResult{pass("esp.example.net"), pass("example.com")}, status: Pass, policy: DispReject, disp: DispNone, alignedD: "example.com"},
		{name: "DKIM policy result does not count", from: "example.com", rec: reject, at: "example.com", dkim: []DKIMResult{{Status: Policy, Domain: "example.com"}}, status: Fail, policy: DispReject, disp: DispReject},
		{name: "DKIM temperror aligned", from: "example.com", rec: reject, at: "example.com", dkim: []DKIMResult{{Status: TempError, Domain: "example.com"}}, status: TempError, policy: DispReject, disp: DispNone},
		{name: "DKIM temperror not aligned", from: "example.com", rec: reject, at: "example.com", dkim: []DKIMResult{{Status: TempError, Domain: "example.net"}}, status: Fail, policy: DispReject, disp: DispReject},
		{name: "DKIM temperror but SPF aligned pass", from: "example.com", rec: reject, at: "example.com", dkim: []DKIMResult{{Status: TempError, Domain: "example.com"}}, spf: spfPass("example.com"), status: Pass, policy: DispReject, disp: DispNone, alignedS: "example.com"},
		{name: "SPF exact", from: "example.com", rec: reject, at: "example.com", spf: spfPass("example.com"), status: Pass, policy: DispReject, disp: DispNone, alignedS: "example.com"},
		{name: "SPF relaxed subdomain", from: "example.com", rec: reject, at: "example.com", spf: spfPass("bounces.example.com"), status: Pass, policy: DispReject, disp: DispNone, alignedS: "bounces.example.com"},
		{name: "SPF strict subdomain fails", from: "example.com", rec: strict, at: "example.com", spf: spfPass("bounces.example.com"), status: Fail, policy: DispReject, disp: DispReject},
		{name: "SPF softfail does not count", from: "example.com", rec: reject, at: "example.com", spf: SPFResult{Status: SoftFail, Domain: "example.com"}, status: Fail, policy: DispReject, disp: DispReject},
		{name: "SPF other domain", from: "example.com", rec: reject, at: "example.com", spf: spfPass("esp.example.net"), status: Fail, policy: DispReject, disp: DispReject},
		{name: "SPF temperror aligned", from: "example.com", rec: reject, at: "example.com", spf: SPFResult{Status: TempError, Domain: "example.com"}, status: TempError, policy: DispReject, disp: DispNone},
		{name: "SPF HELO identity aligned", from: "example.com", rec: reject, at: "example.com", spf: SPFResult{Status: Pass, Identity: "helo", Domain: "mx.example.com"}, status: Pass, policy: DispReject, disp: DispNone, alignedS: "mx.example.com"},
		{name: "nothing at all", from: "example.com", rec: reject, at: "example.com", status: Fail, policy: DispReject, disp: DispReject},
		{name: "sp= for a subdomain", from: "mail.example.com", rec: withSP, at: "example.com", status: Fail, policy: DispQuarantine, disp: DispQuarantine},
		{name: "sp= not for the domain itself", from: "example.com", rec: withSP, at: "example.com", status: Fail, policy: DispReject, disp: DispReject},
		{name: "no sp=: p= for a subdomain", from: "mail.example.com", rec: reject, at: "example.com", status: Fail, policy: DispReject, disp: DispReject},
		{name: "subdomain's own record: p=", from: "mail.example.com", rec: withSP, at: "mail.example.com", status: Fail, policy: DispReject, disp: DispReject},
		{name: "pct=50 sampled", from: "example.com", rec: pct50, at: "example.com", roll: 49, status: Fail, policy: DispReject, disp: DispReject},
		{name: "pct=50 not sampled: quarantine", from: "example.com", rec: pct50, at: "example.com", roll: 50, status: Fail, policy: DispReject, disp: DispQuarantine},
		{name: "pct=50 quarantine not sampled: none", from: "example.com", rec: q50, at: "example.com", roll: 99, status: Fail, policy: DispQuarantine, disp: DispNone},
		{name: "pct=0", from: "example.com", rec: pct0, at: "example.com", roll: 0, status: Fail, policy: DispReject, disp: DispQuarantine},
		{name: "pct on a pass", from: "example.com", rec: pct50, at: "example.com", roll: 99, spf: spfPass("example.com"), status: Pass, policy: DispReject, disp: DispNone, alignedS: "example.com"},
		{name: "p=none", from: "example.com", rec: none, at: "example.com", status: Fail, policy: DispNone, disp: DispNone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rolled := false
			opts := &DMARCOptions{Rand: func(n int) int {
				if n != 100 {
					t.Errorf("Rand(%d)", n)
				}
				rolled = true
				return c.roll
			}}
			got := EvaluateDMARC(c.from, c.rec, c.at, c.dkim, c.spf, opts)
			if got.Status != c.status || got.Policy != c.policy || got.Disposition != c.disp ||
				got.AlignedDKIM != c.alignedD || got.AlignedSPF != c.alignedS || got.FromDomain != normDomain(c.from) {
				t.Errorf("got %+v\nwant status %s policy %q disposition %q aligned %q/%q", got, c.status, c.policy, c.disp, c.alignedD, c.alignedS)
			}
			if got.Record != c.rec { // reports publish the record that applied
				t.Errorf("Record %p, want %p", got.Record, c.rec)
			}
			if rolled != (c.rec != nil && c.rec.Pct < 100 && c.status == Fail && c.policy != DispNone) {
				t.Errorf("Rand called: %v", rolled)
			}
		})
	}
}

func hdrs(lines ...string) []mailtext.Header {
	var hs []mailtext.Header
	for _, l := range lines {
		n, v, _ := strings.Cut(l, ":")
		hs = append(hs, mailtext.Header{Name: n, Value: v})
	}
	return hs
}

// TestCheckDMARC runs discovery and evaluation together, over a real DNS
// server, with the From cases of RFC 7489 §6.6.1.
func TestCheckDMARC(t *testing.T) {
	srv, res := newZone(t,
		txtRecord("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.com"),
		txtRecord("_dmarc.example.org", "v=DMARC1; p=quarantine"),
		txtRecord("_dmarc.temp.test", "v=DMARC1; p=reject"),
		txtRecord("_dmarc.bad.test", "v=DMARC1; p=nope"),
	)
	srv.SetFault("_dmarc.temp.test", dnstest.ServFail)
	ctx := context.Background()
	always := &DMARCOptions{Rand: func(int) int { return 0 }}
	dk := []DKIMResult{pass("example.com")}

	cases := []struct {
		name   string
		from   []mailtext.Header
		dkim   []DKIMResult
		spf    SPFResult
		status Status
		domain string
		disp   Disposition
	}{
		{"pass", hdrs("From: a@example.com"), dk, SPFResult{}, Pass, "example.com", DispNone},
		{"fail reject", hdrs("From: a@example.com"), nil, SPFResult{}, Fail, "example.com", DispReject},
		{"subdomain sp=quarantine", hdrs("From: a@news.example.com"), nil, SPFResult{}, Fail, "news.example.com", DispQuarantine},
		{"subdomain passes by relaxed DKIM", hdrs("From: a@news.example.com"), dk, SPFResult{}, Pass, "news.example.com", DispNone},
		{"no record", hdrs("From: a@example.net"), nil, SPFResult{}, None, "example.net", ""},
		{"temperror", hdrs("From: a@temp.test"), nil, SPFResult{}, TempError, "temp.test", ""},
		{"bad record", hdrs("From: a@bad.test"), nil, SPFResult{}, PermError, "bad.test", ""},
		{"no From", hdrs("Subject: x"), dk, SPFResult{}, PermError, "", ""},
		// Several domains: the worst result is reported.
		{"second From domain fails", hdrs("From: a@example.com, b@example.org"), dk, SPFResult{}, Fail, "example.org", DispQuarantine},
		{"second From field fails", hdrs("From: a@example.com", "From: b@example.org"), dk, SPFResult{}, Fail, "example.org", DispQuarantine},
		{"strictest failing policy wins", hdrs("From: b@example.org, a@example.com"), nil, SPFResult{}, Fail, "example.com", DispReject},
		{"one without a record", hdrs("From: a@example.com, b@example.net"), dk, SPFResult{}, None, "example.net", ""},
		{"both pass", hdrs("From: a@example.com, b@mail.example.com"), dk, SPFResult{}, Pass, "example.com", DispNone},
		// An invalid domain beside others is permerror beside them, not
		// instead of them: it cannot hide a p=reject.
		{"invalid domain beside a failing one", hdrs("From: x@localhost, a@example.com"), nil, SPFResult{}, Fail, "example.com", DispReject},
		{"invalid domain beside a passing one", hdrs("From: a@example.com", "From: <x@../planted/x>"), dk, SPFResult{}, PermError, "", ""},
		{"only an invalid domain", hdrs("From: <a@../../../../somewhere/x>"), dk, SPFResult{}, PermError, "", ""},
		{"no address", hdrs("From: undisclosed-recipients:;"), dk, SPFResult{}, PermError, "", ""},
		{"five domains are evaluated", hdrs("From: a@example.com, b@a.example, c@b.example, d@c.example, e@d.example"), dk, SPFResult{}, None, "a.example", ""},
		{"six domains are a failure with p=reject", hdrs("From: a@example.com, b@a.example, c@b.example, d@c.example, e@d.example, f@e.example"), dk, SPFResult{}, Fail, "example.com", DispReject},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckDMARC(ctx, res, tc.from, tc.dkim, tc.spf, always)
			if got.Status != tc.status || got.FromDomain != tc.domain || got.Disposition != tc.disp {
				t.Errorf("%+v, want %s %s %q", got, tc.status, tc.domain, tc.disp)
			}
			if got.Status != Pass && got.Reason == "" {
				t.Error("no reason")
			}
		})
	}
}

// TestCheckDMARCBoundsLookups: one 79 KB From field naming thousands of
// domains caused 5,000 TXT lookups (issue 12). Only MaxFromDomains
// domains are ever looked up, two lookups each at most; more is a
// failure without a lookup.
func TestCheckDMARCBoundsLookups(t *testing.T) {
	srv, res := newZone(t, txtRecord("_dmarc.example.com", "v=DMARC1; p=reject"))
	ctx := context.Background()
	from := func(n int) []mailtext.Header {
		addrs := make([]string, n)
		for i := range addrs {
			addrs[i] = fmt.Sprintf("u@d%d.example.net", i)
		}
		return hdrs("From: " + strings.Join(addrs, ", "))
	}
	huge := from(4200)
	if n := len(huge[0].Value); n < 79_000 {
		t.Fatalf("From is %d bytes", n)
	}
	for _, tc := range []struct {
		name       string
		headers    []mailtext.Header
		maxQueries int
		status     Status
	}{
		{"79 KB From", huge, 0, Fail},
		{"six domains", from(MaxFromDomains + 1), 0, Fail},
		{"five domains", from(MaxFromDomains), 2 * MaxFromDomains, None},
	} {
		before := srv.Queries()
		got := CheckDMARC(ctx, res, tc.headers, nil, SPFResult{}, nil)
		q := srv.Queries() - before
		t.Logf("%s: %d DNS queries, %s", tc.name, q, got.Status)
		if q > tc.maxQueries {
			t.Errorf("%s: %d DNS queries, want at most %d", tc.name, q, tc.maxQueries)
		}
		if got.Status != tc.status || got.Status == Fail && got.Disposition != DispReject {
			t.Errorf("%s: %+v, want %s", tc.name, got, tc.status)
		}
		if len(got.Reason) > 300 {
			t.Errorf("%s: reason of %d bytes", tc.name, len(got.Reason))
		}
	}
}

// formatDMARC writes a parsed record back as a DMARC record.
func formatDMARC(r *DMARCRecord) string {
	s := fmt.Sprintf("v=DMARC1; p=%s; adkim=%s; aspf=%s; pct=%d", r.Policy, r.ADKIM, r.ASPF, r.Pct)
	if r.SubdomainPolicy != "" {
		s += "; sp=" + string(r.SubdomainPolicy)
	}
	if len(r.RUA) > 0 {
		s += "; rua=" + strings.Join(r.RUA, ",")
	}
	if len(r.RUF) > 0 {
		s += "; ruf=" + strings.Join(r.RUF, ",")
	}
	return s
}

// FuzzParseDMARC: a record that parses has a policy among none,
// quarantine and reject, sp= empty or one of them, adkim and aspf r or s,
// pct in 0..100, and written back it parses to the same record without
// warnings. The record comes from the sender's DNS.
func FuzzParseDMARC(f *testing.F) {
	for _, s := range []string{
		"v=DMARC1; p=reject", "v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20;rua=mailto:a@example.com,mailto:b@example.com!10m;ruf=mailto:f@example.com",
		" v = DMARC1 ; P = Reject ; ", "v=DMARC1; p=none; pct=150; adkim=x; fo=1", "v=DMARC1; rua=mailto:r@example.com",
		"v=DMARC1; p=reject; sp=bogus; rua=mailto:r@example.com", "v=DMARC1; p=reject; p=none", "v=DMARC1; p=none; pct=-0; rua= , ,x=y",
		"v=spf1 -all", "v=DMARC1; p=reject; pct=+5",
	} {
		f.Add(s)
	}
	valid := func(d Disposition) bool { return d == DispNone || d == DispQuarantine || d == DispReject }
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseDMARC(txt)
		if err != nil {
			if r != nil {
				t.Fatalf("%q: a record and an error", txt)
			}
			return
		}
		if !valid(r.Policy) || r.SubdomainPolicy != "" && !valid(r.SubdomainPolicy) || r.Pct < 0 || r.Pct > 100 ||
			(r.ADKIM != "r" && r.ADKIM != "s") || (r.ASPF != "r" && r.ASPF != "s") {
			t.Fatalf("%q: %+v", txt, *r)
		}
		out := formatDMARC(r)
		again, err := ParseDMARC(out)
		if err != nil || len(again.Warnings) > 0 || again.Policy != r.Policy || again.SubdomainPolicy != r.SubdomainPolicy ||
			again.ADKIM != r.ADKIM || again.ASPF != r.ASPF || again.Pct != r.Pct || !slices.Equal(again.RUA, r.RUA) || !slices.Equal(again.RUF, r.RUF) {
			t.Fatalf("%q: parsed %+v\nwritten %q\nparsed again %+v, %v", txt, *r, out, again, err)
		}
	})
}
