package dmarcreport

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// What `vouch reports list` and `vouch reports html` show: the received
// reports summed per own domain, per reporting organisation and per source
// IP, with the sources that fail flagged.

// The flags of a source, worst first.
const (
	// FlagUnknownSource: no message passed DMARC (neither SPF nor DKIM
	// aligned). A server of yours that is missing from SPF and signs
	// nothing, or someone else sending as you.
	FlagUnknownSource = "unknown source sending as you"
	// FlagDKIMBreaks: SPF aligned passes but DKIM aligned fails, so the
	// messages pass only as long as SPF does: typically a server signing
	// with the wrong key (or not at all), or a forwarder that alters them.
	FlagDKIMBreaks = "DKIM breaks"
	// FlagPartlyFailing: some of the source's messages fail DMARC.
	FlagPartlyFailing = "partly failing"
)

// ReceivedSummary is the received reports, summed (Summary is a sending
// pass, send.go).
type ReceivedSummary struct {
	// Since is the start of what was asked for (set by the caller); First
	// and Last are the earliest begin and latest end of the reports' date
	// ranges.
	Since     time.Time         `json:"since"`
	First     time.Time         `json:"first,omitzero"`
	Last      time.Time         `json:"last,omitzero"`
	Reports   int               `json:"reports"`
	Domains   []DomainSummary   `json:"domains"`
	Malformed []MalformedReport `json:"malformed,omitempty"`
}

// DomainSummary is one own domain (policy_published domain).
type DomainSummary struct {
	Domain  string `json:"domain"`
	Reports int    `json:"reports"`
	Counts
	// Days is messages passing and failing DMARC per UTC day (of each
	// report's date_range begin), every day from the first to the last.
	Days []DayCount   `json:"days"`
	Orgs []OrgSummary `json:"orgs"`
}

// OrgSummary is one reporting organisation's reports about a domain.
type OrgSummary struct {
	Org     string `json:"org"`
	Email   string `json:"email,omitempty"`
	Reports int    `json:"reports"`
	// Unauthenticated is how many of the reports came in messages that did
	// not pass DMARC: they may be forged.
	Unauthenticated int `json:"unauthenticated,omitempty"`
	Counts
	Sources []SourceSummary `json:"sources"`
}

// SourceSummary is one source IP as one organisation saw it.
type SourceSummary struct {
	IP string `json:"ip"`
	Counts
	// Unauthenticated is how many of the messages were counted from
	// reports that may be forged.
	Unauthenticated int64      `json:"unauthenticated,omitempty"`
	HeaderFrom      []string   `json:"header_from"`
	DKIM            []AuthSeen `json:"dkim,omitempty"`
	SPF             []AuthSeen `json:"spf,omitempty"`
	Flags           []string   `json:"flags,omitempty"`
}

// Counts are messages and how they fared. Pct fields are percentages of
// Messages (0 when there are none).
type Counts struct {
	Messages    int64 `json:"messages"`
	DMARCPass   int64 `json:"dmarc_pass"`   // SPF or DKIM aligned passed
	SPFAligned  int64 `json:"spf_aligned"`  // policy_evaluated spf=pass
	DKIMAligned int64 `json:"dkim_aligned"` // policy_evaluated dkim=pass
	// DKIMBroken is messages whose SPF aligned passed but DKIM aligned
	// did not.
	DKIMBroken   int64            `json:"dkim_broken"`
	Dispositions map[string]int64 `json:"dispositions"`

	DMARCPct float64 `json:"dmarc_pass_pct"`
	SPFPct   float64 `json:"spf_aligned_pct"`
	DKIMPct  float64 `json:"dkim_aligned_pct"`
}

// AuthSeen is one authentication result (unaligned, from auth_results)
// and how many messages carried it.
type AuthSeen struct {
	Domain   string `json:"domain"`
	Selector string `json:"selector,omitempty"` // DKIM
	Scope    string `json:"scope,omitempty"`    // SPF: helo or mfrom
	Result   string `json:"result"`
	Messages int64  `json:"messages"`
}

// DayCount is one UTC day of a domain's chart.
type DayCount struct {
	Day  string `json:"day"` // DayFormat
	Pass int64  `json:"pass"`
	Fail int64  `json:"fail"`
}

// MalformedReport is a report message that could not be read (its raw
// bytes stay in the store).
type MalformedReport struct {
	ReceivedAt time.Time `json:"received_at"`
	MailFrom   string    `json:"mail_from"`
	Reason     string    `json:"reason"`
}

// maxChartDays bounds the day series: a (forged) report with a date range
// decades wide must not make a chart of thousands of days.
const maxChartDays = 400

// maxRecordCount caps one record's count (a billion messages from one IP,
// far beyond any real report): sums of capped counts do not overflow.
const maxRecordCount = 1e9

// Summarize sums reports (and lists malformed ones). Everything is sorted:
// most messages first, then by name or IP.
func Summarize(reports []Received, malformed []Malformed) ReceivedSummary {
	var s ReceivedSummary
	domains := map[string]*domainAcc{}
	for _, r := range reports {
		fb := &r.Feedback
		s.Reports++
		begin := time.Unix(fb.Metadata.DateRange.Begin, 0).UTC()
		end := time.Unix(fb.Metadata.DateRange.End, 0).UTC()
		if s.First.IsZero() || begin.Before(s.First) {
			s.First = begin
		}
		if end.After(s.Last) {
			s.Last = end
		}
		dkey := strings.ToLower(fb.Policy.Domain)
		d := domains[dkey]
		if d == nil {
			d = &domainAcc{DomainSummary: DomainSummary{Domain: dkey}, orgs: map[string]*orgAcc{}, days: map[string]*DayCount{}}
			domains[dkey] = d
		}
		d.Reports++
		okey := strings.ToLower(fb.Metadata.OrgName)
		o := d.orgs[okey]
		if o == nil {
			o = &orgAcc{OrgSummary: OrgSummary{Org: fb.Metadata.OrgName, Email: fb.Metadata.Email}, sources: map[string]*sourceAcc{}}
			d.orgs[okey] = o
		}
		o.Reports++
		if !r.Authenticated {
			o.Unauthenticated++
		}
		day := begin.Format(DayFormat)
		dc := d.days[day]
		if dc == nil {
			dc = &DayCount{Day: day}
			d.days[day] = dc
		}
		for _, rec := range fb.Records {
			// A negative count (forged or broken) adds nothing, and a huge
			// one cannot make the sums wrap around.
			n := min(max(rec.Row.Count, 0), maxRecordCount)
			src := o.sources[rec.Row.SourceIP]
			if src == nil {
				src = &sourceAcc{SourceSummary: SourceSummary{IP: rec.Row.SourceIP}, from: map[string]bool{}, dkim: map[AuthSeen]int64{}, spf: map[AuthSeen]int64{}}
				o.sources[rec.Row.SourceIP] = src
			}
			pass := src.add(rec, n)
			o.add(rec, n)
			d.add(rec, n)
			if pass {
				dc.Pass += n
			} else {
				dc.Fail += n
			}
			if !r.Authenticated {
				src.Unauthenticated += n
			}
		}
	}
	for _, d := range domains {
		s.Domains = append(s.Domains, d.finish())
	}
	slices.SortFunc(s.Domains, func(a, b DomainSummary) int {
		return cmp.Or(cmp.Compare(b.Messages, a.Messages), strings.Compare(a.Domain, b.Domain))
	})
	for _, m := range malformed {
		s.Malformed = append(s.Malformed, MalformedReport{ReceivedAt: m.ReceivedAt.UTC(), MailFrom: m.MailFrom, Reason: m.Reason})
	}
	slices.SortStableFunc(s.Malformed, func(a, b MalformedReport) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	return s
}

type domainAcc struct {
	DomainSummary
	orgs map[string]*orgAcc
	days map[string]*DayCount
}

type orgAcc struct {
	OrgSummary
	sources map[string]*sourceAcc
}

type sourceAcc struct {
	SourceSummary
	from      map[string]bool
	dkim, spf map[AuthSeen]int64 // Messages 0 in the key
}

// add counts n messages of rec and says whether they passed DMARC.
func (c *Counts) add(rec Record, n int64) bool {
	pe := rec.Row.PolicyEvaluated
	spf, dkim := strings.EqualFold(pe.SPF, "pass"), strings.EqualFold(pe.DKIM, "pass")
	c.Messages += n
	if spf || dkim {
		c.DMARCPass += n
	}
	if spf {
		c.SPFAligned += n
		if !dkim {
			c.DKIMBroken += n
		}
	}
	if dkim {
		c.DKIMAligned += n
	}
	if c.Dispositions == nil {
		c.Dispositions = map[string]int64{}
	}
	disp := strings.ToLower(pe.Disposition)
	if disp == "" {
		disp = "none" // RFC 7489 makes it required; a missing one applied nothing
	}
	c.Dispositions[disp] += n
	return spf || dkim
}

// finishPct fills the percentages.
func (c *Counts) finishPct() {
	if c.Dispositions == nil {
		c.Dispositions = map[string]int64{}
	}
	if c.Messages == 0 {
		return
	}
	// One decimal, rounded down: 99.96% shows as 99.9, never as 100.
	pct := func(k int64) float64 { return math.Floor(float64(k)*1000/float64(c.Messages)) / 10 }
	c.DMARCPct, c.SPFPct, c.DKIMPct = pct(c.DMARCPass), pct(c.SPFAligned), pct(c.DKIMAligned)
}

func (s *sourceAcc) add(rec Record, n int64) bool {
	pass := s.Counts.add(rec, n)
	s.from[strings.ToLower(rec.Identifiers.HeaderFrom)] = true
	for _, d := range rec.AuthResults.DKIM {
		s.dkim[AuthSeen{Domain: strings.ToLower(d.Domain), Selector: d.Selector, Result: strings.ToLower(d.Result)}] += n
	}
	for _, p := range rec.AuthResults.SPF {
		s.spf[AuthSeen{Domain: strings.ToLower(p.Domain), Scope: strings.ToLower(p.Scope), Result: strings.ToLower(p.Result)}] += n
	}
	return pass
}

func (d *domainAcc) finish() DomainSummary {
	out := d.DomainSummary
	out.finishPct()
	for _, o := range d.orgs {
		out.Orgs = append(out.Orgs, o.finish())
	}
	slices.SortFunc(out.Orgs, func(a, b OrgSummary) int {
		return cmp.Or(cmp.Compare(b.Messages, a.Messages), strings.Compare(strings.ToLower(a.Org), strings.ToLower(b.Org)), strings.Compare(a.Org, b.Org))
	})
	out.Days = daySeries(d.days)
	return out
}

// daySeries is every day from the first to the last of days (the most
// recent maxChartDays), the ones without reports at zero.
func daySeries(days map[string]*DayCount) []DayCount {
	var first, last time.Time
	for day := range days {
		t, _ := time.Parse(DayFormat, day) // made with DayFormat
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	if last.IsZero() {
		return []DayCount{}
	}
	if earliest := last.AddDate(0, 0, -(maxChartDays - 1)); first.Before(earliest) {
		first = earliest
	}
	var out []DayCount
	for t := first; !t.After(last); t = t.AddDate(0, 0, 1) {
		day := t.Format(DayFormat)
		if dc := days[day]; dc != nil {
			out = append(out, *dc)
		} else {
			out = append(out, DayCount{Day: day})
		}
	}
	return out
}

func (o *orgAcc) finish() OrgSummary {
	out := o.OrgSummary
	out.finishPct()
	for _, s := range o.sources {
		out.Sources = append(out.Sources, s.finish())
	}
	slices.SortFunc(out.Sources, func(a, b SourceSummary) int {
		return cmp.Or(cmp.Compare(b.Messages, a.Messages), compareIP(a.IP, b.IP))
	})
	return out
}

func (s *sourceAcc) finish() SourceSummary {
	out := s.SourceSummary
	out.finishPct()
	out.HeaderFrom = make([]string, 0, len(s.from))
	for f := range s.from {
		out.HeaderFrom = append(out.HeaderFrom, f)
	}
	slices.Sort(out.HeaderFrom)
	out.DKIM, out.SPF = authSeen(s.dkim), authSeen(s.spf)
	if out.Messages > 0 && out.DMARCPass == 0 {
		out.Flags = append(out.Flags, FlagUnknownSource)
	}
	if out.DKIMBroken > 0 {
		out.Flags = append(out.Flags, FlagDKIMBreaks)
	}
	if out.DMARCPass > 0 && out.DMARCPass < out.Messages {
		out.Flags = append(out.Flags, FlagPartlyFailing)
	}
	return out
}

// authSeen lists m, most messages first.
func authSeen(m map[AuthSeen]int64) []AuthSeen {
	var out []AuthSeen
	for a, n := range m {
		a.Messages = n
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b AuthSeen) int {
		return cmp.Or(cmp.Compare(b.Messages, a.Messages), strings.Compare(a.Domain, b.Domain),
			strings.Compare(a.Selector, b.Selector), strings.Compare(a.Scope, b.Scope), strings.Compare(a.Result, b.Result))
	})
	return out
}

// compareIP orders addresses numerically (IPv4 before IPv6), and what does
// not parse after them, as text.
func compareIP(a, b string) int {
	pa, errA := netip.ParseAddr(a)
	pb, errB := netip.ParseAddr(b)
	switch {
	case errA == nil && errB == nil:
		return pa.Compare(pb)
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// Covered is the UTC days the reports cover, first and last: a date range
// ends at the last second of its day or at the next midnight, which is
// not a day covered.
func (s ReceivedSummary) Covered() (first, last string) {
	if s.Reports == 0 {
		return "", ""
	}
	end := s.Last.Add(-time.Second)
	if end.Before(s.First) {
		end = s.First
	}
	return s.First.Format(DayFormat), end.Format(DayFormat)
}

// DispositionText is the dispositions as "none 10, quarantine 2, reject
// 1": the three of RFC 7489 first, others (a reporter's own words) after,
// sorted.
func (c Counts) DispositionText() string {
	keys := make([]string, 0, len(c.Dispositions))
	for k := range c.Dispositions {
		keys = append(keys, k)
	}
	rank := map[string]int{"none": 0, "quarantine": 1, "reject": 2}
	slices.SortFunc(keys, func(a, b string) int {
		ra, okA := rank[a]
		rb, okB := rank[b]
		if !okA {
			ra = len(rank)
		}
		if !okB {
			rb = len(rank)
		}
		return cmp.Or(cmp.Compare(ra, rb), strings.Compare(a, b))
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if n := c.Dispositions[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(parts, ", ")
}

// AuthText is results seen as "s1._domainkey.example.com pass (12),
// example.com fail (3)".
func AuthText(a []AuthSeen) string {
	parts := make([]string, 0, len(a))
	for _, x := range a {
		name := x.Domain
		if x.Selector != "" {
			name = x.Selector + "._domainkey." + x.Domain
		}
		parts = append(parts, fmt.Sprintf("%s %s (%d)", name, x.Result, x.Messages))
	}
	return strings.Join(parts, ", ")
}
