package dmarcreport

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The outgoing side: one period's Aggregate becomes one <feedback>
// (Build), gzipped XML with its RFC 7489 §7.2.1.1 file name (Encode), and
// the mail that carries it (ReportMail). Everything here is a pure
// function of its arguments, so a report built twice is the same report.
//
// The reports validate against RFC 7489's schema (testdata/rfc7489.xsd,
// checked with xmllint in the tests). DMARCbis (RFC 9990) is followed
// where it does not break that schema: no namespace and no new elements,
// since a receiver that validates against RFC 7489 would refuse them.

// Reporter is vouch's identity in the reports it sends ([dmarc_reports]
// org_name, from, extra_contact_info).
type Reporter struct {
	OrgName          string
	Email            string // report_metadata email, and the report mail's From
	ExtraContactInfo string
}

// reportVersion is <version>: required by RFC 7489's schema, and the value
// DMARCbis keeps.
const reportVersion = "1.0"

// Build makes the report of one period, read at now. The date range is the
// UTC day of the period; a report made before the day has ended (`vouch
// reports send` at noon) covers the day up to now.
func Build(rep Reporter, a Aggregate, now time.Time) *Feedback {
	domain := cmp.Or(a.Policy.Domain, a.Domain)
	begin, end := dateRange(a.Day, now)
	return &Feedback{
		Version: reportVersion,
		Metadata: ReportMetadata{
			OrgName:          rep.OrgName,
			Email:            rep.Email,
			ExtraContactInfo: rep.ExtraContactInfo,
			ReportID:         reportID(rep, domain, begin, end),
			DateRange:        DateRange{Begin: begin.Unix(), End: end.Unix()},
		},
		Policy:  policyPublished(a.Policy, domain),
		Records: reportRecords(a.Records),
	}
}

// dateRange is the period's first second and its last one (RFC 7489's
// ri= defaults to a day, DMARCbis asks for whole UTC days, and Google and
// others end a day at 23:59:59), or now when the day has not ended yet.
func dateRange(day string, now time.Time) (begin, end time.Time) {
	now = now.UTC().Truncate(time.Second)
	begin, err := time.Parse(DayFormat, day)
	if err != nil { // the store writes Day with DayFormat: not expected
		begin = now.Truncate(24 * time.Hour)
	}
	end = begin.AddDate(0, 0, 1).Add(-time.Second)
	switch {
	case now.Before(begin): // a clock set back: an empty range, not a negative one
		end = begin
	case now.Before(end):
		end = now
	}
	return begin, end
}

// reportID names a report uniquely and stably: the same reporter, domain
// and date range always give the same ID (so a report rebuilt after a
// failed send is recognisably the same one), anything else another. The
// day and domain make it readable; the hash makes it unique.
func reportID(rep Reporter, domain string, begin, end time.Time) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%d\x00%d",
		rep.OrgName, strings.ToLower(rep.Email), strings.ToLower(domain), begin.Unix(), end.Unix()))
	return begin.Format(DayFormat) + "." + safeDomain(domain) + "." + hex.EncodeToString(h[:8])
}

// policyPublished fills in the RFC 7489 §6.3 defaults of tags the record
// left out: the schema requires sp, pct and fo, and a receiver reading
// the report should see the policy that applied, not a gap.
func policyPublished(p PolicyPublished, domain string) PolicyPublished {
	p.Domain = domain
	p.ADKIM = cmp.Or(p.ADKIM, "r")
	p.ASPF = cmp.Or(p.ASPF, "r")
	p.SP = cmp.Or(p.SP, p.P) // no sp=: p= applies to subdomains
	p.FO = cmp.Or(p.FO, "0")
	// Pct stays as recorded: pct=0 is a real policy, and verify.ParseDMARC
	// gives 100 for a record without pct=.
	return p
}

// reportRecords is the records as the report carries them: written as the
// schema wants them (reportRecord), records that became equal merged, in
// a fixed order (source IP, IPv4 first, then everything else) so that the
// same rows always give the same report.
func reportRecords(in []Record) []Record {
	type keyed struct {
		ip  netip.Addr
		key string
		r   Record
	}
	var rows []keyed
	at := map[string]int{}
	for _, r := range in {
		r = reportRecord(r)
		k := RecordKey(r)
		if i, ok := at[k]; ok {
			rows[i].r.Row.Count += r.Row.Count
			continue
		}
		ip, _ := netip.ParseAddr(r.Row.SourceIP) // invalid: the zero Addr, sorted first
		at[k] = len(rows)
		rows = append(rows, keyed{ip, k, r})
	}
	slices.SortFunc(rows, func(a, b keyed) int {
		return cmp.Or(a.ip.Compare(b.ip), strings.Compare(a.key, b.key))
	})
	out := make([]Record, len(rows))
	for i, k := range rows {
		out[i] = k.r
	}
	return out
}

// reportRecord is a copy of r (the caller's Aggregate is handed to
// Store.Done afterwards and must stay as read) written as RFC 7489's
// schema requires.
func reportRecord(r Record) Record {
	r.Row.SourceIP = reportIP(r.Row.SourceIP)
	r.Row.PolicyEvaluated.Reasons = slices.Clone(r.Row.PolicyEvaluated.Reasons)
	r.AuthResults.DKIM = slices.Clone(r.AuthResults.DKIM)
	// The schema requires an SPF result with its scope. DMARC checks SPF
	// on the MAIL FROM domain, or on the HELO name for a null sender
	// (RFC 7489 §4.1, RFC 7208 §2.4).
	scope := "mfrom"
	if r.Identifiers.EnvelopeFrom == "" {
		scope = "helo"
	}
	spf := slices.Clone(r.AuthResults.SPF)
	if len(spf) == 0 {
		spf = []SPFAuthResult{{Domain: cmp.Or(r.Identifiers.EnvelopeFrom, r.Identifiers.HeaderFrom), Result: "none"}}
	}
	for i := range spf {
		spf[i].Scope = cmp.Or(spf[i].Scope, scope)
	}
	r.AuthResults.SPF = spf
	return r
}

// reportIP writes an address as RFC 7489's schema accepts it: IPv4 dotted,
// IPv6 as eight groups without "::" (the schema's IPAddress pattern knows
// no other IPv6 form; it is a valid RFC 4291 §2.2 form that every parser
// reads). An IPv4-mapped IPv6 address is the IPv4 client it stands for.
func reportIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s // not an address: left for the schema check to catch
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	b := a.As16()
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = strconv.FormatUint(uint64(b[2*i])<<8|uint64(b[2*i+1]), 16)
	}
	return strings.Join(groups, ":")
}

// ReportXML is the report as an XML document, with its declaration.
func ReportXML(fb *Feedback) ([]byte, error) {
	body, err := xml.MarshalIndent(fb, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", fb.Metadata.ReportID, err)
	}
	return slices.Concat([]byte(xml.Header), body, []byte("\n")), nil
}

// Encode is the report as gzipped XML and its RFC 7489 §7.2.1.1 file name.
func Encode(rep Reporter, fb *Feedback) (gz []byte, filename string, err error) {
	doc, err := ReportXML(fb)
	if err != nil {
		return nil, "", err
	}
	filename = FileName(rep, fb)
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, "", err
	}
	// The name gunzip -N restores; no ModTime, so the same report is the
	// same bytes.
	zw.Name = strings.TrimSuffix(filename, ".gz")
	if _, err := zw.Write(doc); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), filename, nil
}

// FileName is the report's file name (RFC 7489 §7.2.1.1):
//
//	receiver "!" policy-domain "!" begin-timestamp "!" end-timestamp
//	    [ "!" unique-id ] ".xml.gz"
//
// with unique-id = 1*(ALPHA / DIGIT), derived from the report ID. Its
// domains pass safeDomain: the name becomes a file name with `vouch
// reports send -dry-run DIR`, so no "/" and no "!" get into it.
func FileName(rep Reporter, fb *Feedback) string {
	return fmt.Sprintf("%s!%s!%d!%d!%s.xml.gz", receiver(rep), safeDomain(fb.Policy.Domain),
		fb.Metadata.DateRange.Begin, fb.Metadata.DateRange.End, uniqueID(fb.Metadata.ReportID))
}

// receiver is the reporting domain: the domain of the report address.
func receiver(rep Reporter) string {
	d := ""
	if i := strings.LastIndexByte(rep.Email, '@'); i >= 0 { // last: a quoted local part may hold "@"
		d = rep.Email[i+1:]
	}
	return safeDomain(d)
}

// uniqueID is the file name's unique-id: letters and digits only.
func uniqueID(reportID string) string {
	h := sha256.Sum256([]byte(reportID))
	return hex.EncodeToString(h[:8])
}

// safeDomain is a domain as a file name, a report ID and a Subject carry
// it: lower case, labels of letters, digits, "-" and "_" (anything else
// becomes "_"), no empty label. Domains come from DNS and from mail
// (attacker-written), so "/", "!", "..", spaces and line breaks must not
// pass, whatever the store holds. "invalid" (RFC 6761) stands for none.
func safeDomain(d string) string {
	d = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, d)
	d = strings.Join(slices.DeleteFunc(strings.Split(d, "."), func(l string) bool { return l == "" }), ".")
	if len(d) > 253 { // RFC 1035 §2.3.4: no longer name exists
		d = strings.TrimSuffix(d[:253], ".")
	}
	return cmp.Or(d, "invalid")
}

// ReportMail is the mail that carries a report to the rua= addresses in to
// (RFC 7489 §7.2.1.1): a multipart/mixed message with a short text and the
// gzipped report as an attachment, CRLF line ends. Every value from the
// config, DNS or mail goes through headerText or safeDomain first, so none
// can add a header line.
func ReportMail(rep Reporter, fb *Feedback, gz []byte, filename string, to []string, now time.Time) []byte {
	domain := safeDomain(fb.Policy.Domain)
	id := uniqueID(fb.Metadata.ReportID)
	boundary := "=_vouch_" + id // "=_" never occurs in base64 or quoted-printable lines
	var rcpts []string
	for _, a := range to {
		// RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its
		// brackets; no server takes a longer address, and it could not be
		// kept within a header line.
		if a = headerText(a); len(a) <= 254 {
			rcpts = append(rcpts, (&mail.Address{Address: a}).String())
		}
	}
	// The display name is decoration: cut so that From stays short.
	name := []rune(headerText(rep.OrgName))
	name = name[:min(len(name), 64)]

	var b bytes.Buffer
	header := func(name, value string) { writeHeader(&b, name, value) }
	header("From", (&mail.Address{Name: string(name), Address: headerText(rep.Email)}).String())
	header("To", strings.Join(rcpts, ", "))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", fmt.Sprintf("<%s.%d@%s>", id, now.Unix(), receiver(rep)))
	// §7.2.1.1: Report-ID is the report's report_id. The msg-id brackets
	// are the RFC's; the ID is ours (reportID), so it holds nothing that
	// could break them.
	header("Subject", fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>",
		domain, receiver(rep), headerText(fb.Metadata.ReportID)))
	header("Auto-Submitted", "auto-generated") // RFC 3834: no auto-replies to it
	header("MIME-Version", "1.0")
	header("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}))
	b.WriteString("\r\nThis is a DMARC aggregate report (RFC 7489) in MIME format.\r\n")

	begin := time.Unix(fb.Metadata.DateRange.Begin, 0).UTC().Format(time.DateTime)
	end := time.Unix(fb.Metadata.DateRange.End, 0).UTC().Format(time.DateTime)
	fmt.Fprintf(&b, "\r\n--%s\r\n", boundary)
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	// The text may hold the org name in UTF-8: quoted-printable keeps the
	// message 7-bit for any relay.
	qp := quotedprintable.NewWriter(&b)
	fmt.Fprintf(qp, "This is a DMARC aggregate report from %s\r\nabout the domain %s, %s to %s UTC.\r\nReport-ID: %s\r\n",
		headerText(rep.OrgName), domain, begin, end, headerText(fb.Metadata.ReportID))
	qp.Close()

	fmt.Fprintf(&b, "\r\n--%s\r\n", boundary)
	header("Content-Type", mime.FormatMediaType("application/gzip", map[string]string{"name": filename}))
	header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	header("Content-Transfer-Encoding", "base64")
	b.WriteString("\r\n")
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 { // RFC 2045 §6.8: lines of at most 76 characters
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

// writeHeader writes one header field, folded at spaces so that its lines
// stay within 78 characters where its words allow (RFC 5322 §2.1.1,
// §2.2.3): a long org name or list of recipients must not make a line
// longer than the 998 characters SMTP carries.
func writeHeader(b *bytes.Buffer, name, value string) {
	line := name + ":"
	for i, w := range strings.Split(value, " ") {
		if i > 0 && w != "" && len(line)+1+len(w) > 78 {
			b.WriteString(line + "\r\n")
			line = ""
		}
		line += " " + w
	}
	b.WriteString(line + "\r\n")
}

// headerText is s without control characters (CR and LF above all), so
// that it stays within its header line.
func headerText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
