package dmarcreport

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"golang.org/x/text/encoding/charmap"

	"vouch/internal/mailtext"
)

// Reading incoming aggregate reports. Everything here is attacker input:
// a report mail can come from anybody, so every size is capped while it
// is read (never checked after), the XML parser refuses DTDs, and every
// error text is cut to printable ASCII of bounded length.

// Limits bound what reading a report message may cost. A zero field takes
// its default, the one of [dmarc_reports] in default.toml where there is
// one.
type Limits struct {
	MaxMessage  int64 // bytes of the whole message read (10 MiB)
	MaxXML      int64 // bytes of XML one report may unpack to (50 MiB)
	MaxUnpacked int64 // bytes of XML all reports of one message may unpack to (2 × MaxXML)
	MaxRecords  int   // <record>s per report (100000)
	MaxDepth    int   // XML element nesting (32; a report needs 5)
}

const (
	maxMIMEDepth  = 5  // multipart nesting; report mails use 1 or 2
	maxMIMEParts  = 50 // MIME parts per message, at any depth
	maxZipEntries = 8  // a report zip holds one .xml file
	// Every XML element costs the decoder and the decoded Feedback up to
	// ~100 bytes, and `<dkim/>` is 7: the element count is capped at one
	// per minElementBytes of MaxXML, so that a report's memory stays a
	// small multiple of MaxXML. Real reports spend 20-40 bytes per element
	// (`<source_ip>192.0.2.1</source_ip>`), so they reach MaxXML first.
	minElementBytes = 16
	maxErrorLen     = 1000 // the whole error of ParseMessage
	maxProblemLen   = 400  // one attachment's part of it
)

// The date_range a report may claim: DMARC is from 2012, and a report
// covers a day, a week at most in practice (RFC 7489 §7.2.1.1 says 1 day
// to 1 year is fine).
var (
	minReportTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxReportTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

const (
	maxReportSpan = 366 * 24 * 60 * 60
	maxCount      = 1_000_000_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxMessage <= 0 {
		l.MaxMessage = 10 << 20
	}
	if l.MaxXML <= 0 {
		l.MaxXML = 50 << 20
	}
	if l.MaxUnpacked <= 0 {
		l.MaxUnpacked = 2 * l.MaxXML
	}
	if l.MaxRecords <= 0 {
		l.MaxRecords = 100_000
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 32
	}
	return l
}

// ParseMessage reads the aggregate reports of a mail message (headers and
// body as received, CRLF or LF): every attachment that is a report (zip,
// gzip or plain XML, by content type or file name), or the body itself
// when the message is a single such part. It returns one Feedback per
// report, validated and normalized (see ParseFeedback). A message without
// a report is an error; a bad attachment beside good ones gives the good
// reports and an error describing the bad one, and the caller keeps both.
// The error text is printable ASCII of at most 1000 bytes.
func ParseMessage(r io.Reader, lim Limits) ([]Feedback, error) {
	lim = lim.withDefaults()
	in := &capReader{r: r, n: lim.MaxMessage, err: fmt.Errorf("message larger than %d bytes", lim.MaxMessage)}
	p := &parser{lim: lim, xmlLeft: lim.MaxUnpacked}
	msg, err := mail.ReadMessage(bufio.NewReader(in))
	if err != nil {
		err = fmt.Errorf("message header: %s", mailtext.Printable(err.Error()))
	} else {
		p.walk(textproto.MIMEHeader(msg.Header), msg.Body, 0)
		// The size limit holds for the whole message, also after the
		// last report (and the parts not read past maxMIMEParts).
		if _, rerr := io.Copy(io.Discard, msg.Body); rerr != nil {
			err = fmt.Errorf("reading the message: %s", mailtext.Printable(rerr.Error()))
		}
	}
	switch {
	case in.over:
		return nil, errors.New(in.err.Error())
	case err != nil:
		return nil, err
	case len(p.problems) > 0:
		return p.found, p.problems
	case len(p.found) == 0:
		return nil, errors.New("no DMARC aggregate report (zip, gzip or XML attachment) in the message")
	}
	return p.found, nil
}

// ParseFeedback reads one aggregate report's XML (not compressed) under
// lim's MaxXML, MaxRecords and MaxDepth, then validates and normalizes
// it: policy domain, org_name, report_id, date_range, source IPs and
// counts are checked, domains and result words lower-cased, text trimmed,
// and the namespace dropped (RFC 7489 reports, DMARCbis ones with
// xmlns="urn:ietf:params:xml:ns:dmarc-2.0" and the draft's
// "http://dmarc.org/dmarc-xml/0.1" decode alike).
func ParseFeedback(r io.Reader, lim Limits) (Feedback, error) {
	lim = lim.withDefaults()
	fb, err := decodeFeedback(&capReader{r: r, n: lim.MaxXML, err: fmt.Errorf("XML larger than %d bytes", lim.MaxXML)}, lim)
	if err != nil {
		return Feedback{}, errors.New(cut(err.Error()))
	}
	return fb, nil
}

// parser is the state of one ParseMessage: what was found, what went
// wrong, and what the limits still allow.
type parser struct {
	lim      Limits
	parts    int
	xmlLeft  int64 // bytes of XML the message may still unpack to
	found    []Feedback
	problems problems
}

func (p *parser) problem(format string, args ...any) {
	p.problems = append(p.problems, cut(fmt.Sprintf(format, args...)))
}

// walk looks at one MIME part: a multipart or an attached message is
// walked into, a leaf that looks like a report is read.
func (p *parser) walk(h textproto.MIMEHeader, body io.Reader, depth int) {
	p.parts++
	if p.parts > maxMIMEParts {
		if p.parts == maxMIMEParts+1 {
			p.problem("more than %d MIME parts: the rest is not read", maxMIMEParts)
		}
		return
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		mt = "text/plain" // RFC 2045 §5.2: what a bad Content-Type means
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"), mt == "message/rfc822":
		if depth >= maxMIMEDepth {
			p.problem("MIME parts nested deeper than %d are not read", maxMIMEDepth)
			return
		}
		if mt == "message/rfc822" {
			// A report forwarded as an attachment.
			msg, err := mail.ReadMessage(bufio.NewReader(body))
			if err != nil {
				p.problem("attached message: %s", mailtext.Printable(err.Error()))
				return
			}
			p.walk(textproto.MIMEHeader(msg.Header), msg.Body, depth+1)
			return
		}
		if params["boundary"] == "" {
			p.problem("%s without boundary", mailtext.Printable(mt))
			return
		}
		mr := multipart.NewReader(body, params["boundary"])
		for p.parts <= maxMIMEParts {
			// NextRawPart: the transfer encoding is decoded below, the
			// same way for every part.
			part, err := mr.NextRawPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				p.problem("MIME: %s", mailtext.Printable(err.Error()))
				return
			}
			p.walk(part.Header, part, depth+1)
		}
	default:
		name := fileName(h, params)
		if !isReport(mt, name) {
			return
		}
		label := "message body"
		if name != "" {
			label = fmt.Sprintf("attachment %q", mailtext.Printable(name))
		}
		r, err := transferDecoder(h, body)
		if err != nil {
			p.problem("%s: %v", label, err)
			return
		}
		p.attachment(label, r)
	}
}

// fileName is the part's file name: Content-Disposition's filename, else
// Content-Type's name (RFC 2231 parameters are decoded by
// mime.ParseMediaType, RFC 2047 words here).
func fileName(h textproto.MIMEHeader, ctParams map[string]string) string {
	name := ctParams["name"]
	if _, params, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		name = params["filename"]
	}
	if dec, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
		name = dec
	}
	return name
}

// isReport says whether a leaf part is an attempt at a report: a content
// type reports are sent as, or the file name of one (with
// application/octet-stream, or any other type).
func isReport(mediaType, name string) bool {
	switch mediaType {
	case "application/gzip", "application/x-gzip", "application/zip", "application/x-zip-compressed",
		"application/x-zip", "text/xml", "application/xml":
		return true
	}
	name = strings.ToLower(name)
	return strings.HasSuffix(name, ".xml") || strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".zip")
}

// transferDecoder undoes the part's Content-Transfer-Encoding.
func transferDecoder(h textproto.MIMEHeader, body io.Reader) (io.Reader, error) {
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "base64":
		// The decoder skips the CR and LF of the lines.
		return layer{base64.NewDecoder(base64.StdEncoding, body), "base64"}, nil
	case "quoted-printable":
		return layer{quotedprintable.NewReader(body), "quoted-printable"}, nil
	case "", "7bit", "8bit", "binary":
		return body, nil
	default:
		return nil, fmt.Errorf("unknown Content-Transfer-Encoding %q", mailtext.Printable(cte))
	}
}

// attachment reads one report attachment, unpacking it by what its first
// bytes are rather than by its content type, which senders get wrong.
func (p *parser) attachment(label string, r io.Reader) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(512) // a read error shows again below
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			p.problem("%s: %s", label, mailtext.Printable(err.Error()))
			return
		}
		p.report(label, layer{zr, "gzip"})
	case bytes.HasPrefix(magic, []byte("PK\x03\x04")), bytes.HasPrefix(magic, []byte("PK\x05\x06")):
		// A zip is read from its end (the central directory), so it is
		// held in memory: at most MaxMessage, as the message is.
		data, err := io.ReadAll(br)
		if err != nil {
			p.problem("%s: %s", label, mailtext.Printable(err.Error()))
			return
		}
		p.zip(label, data)
	case bytes.HasPrefix(bytes.TrimLeft(magic, "\ufeff \t\r\n"), []byte("<")):
		p.report(label, br)
	default:
		p.problem("%s: neither gzip, zip nor XML", label)
	}
}

func (p *parser) zip(label string, data []byte) {
	// zip.NewReader allocates for every central directory entry before
	// anything can be looked at; each starts with this signature, so
	// counting them bounds that.
	if n := bytes.Count(data, []byte("PK\x01\x02")); n > maxZipEntries {
		p.problem("%s: zip with more than %d files", label, maxZipEntries)
		return
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are not used as paths
		p.problem("%s: %s", label, mailtext.Printable(err.Error()))
		return
	}
	xmls := 0
	for _, f := range zr.File {
		if !strings.HasSuffix(strings.ToLower(f.Name), ".xml") {
			continue
		}
		xmls++
		entry := fmt.Sprintf("%s file %q", label, mailtext.Printable(f.Name))
		// The declared size is checked to refuse early, never trusted:
		// the reading is capped too (archive/zip also fails an entry
		// that inflates past its declared size).
		if f.UncompressedSize64 > uint64(p.lim.MaxXML) {
			p.problem("%s: unpacks to %d bytes, more than %d", entry, f.UncompressedSize64, p.lim.MaxXML)
			continue
		}
		rc, err := f.Open()
		if err != nil {
			p.problem("%s: %s", entry, mailtext.Printable(err.Error()))
			continue
		}
		p.report(entry, layer{rc, "zip"})
		rc.Close()
	}
	if xmls == 0 {
		p.problem("%s: no .xml file in the zip", label)
	}
}

// report reads one report's XML, within MaxXML and what is left of
// MaxUnpacked.
func (p *parser) report(label string, r io.Reader) {
	cr := &capReader{r: r, n: p.lim.MaxXML, err: fmt.Errorf("XML larger than %d bytes", p.lim.MaxXML)}
	if p.xmlLeft < cr.n {
		cr.n = p.xmlLeft
		cr.err = fmt.Errorf("the reports of the message unpack to more than %d bytes", p.lim.MaxUnpacked)
	}
	allowed := cr.n
	fb, err := decodeFeedback(cr, p.lim)
	p.xmlLeft -= allowed - cr.n
	if err != nil {
		p.problem("%s: %v", label, err)
		return
	}
	p.found = append(p.found, fb)
}

// decodeFeedback decodes and validates one report from r, which the
// caller caps in size.
func decodeFeedback(r io.Reader, lim Limits) (Feedback, error) {
	d := xml.NewDecoder(r)
	d.Strict = true // no HTML entities, no unclosed elements
	d.CharsetReader = charsetReader
	g := &guard{d: d, lim: lim, maxElements: lim.MaxXML / minElementBytes}
	outer := xml.NewTokenDecoder(g)
	var fb Feedback
	err := outer.Decode(&fb)
	for err == nil {
		// After </feedback>: nothing but space, comments and processing
		// instructions; reading on to EOF also checks the gzip or zip
		// checksum.
		var t xml.Token
		t, err = outer.Token()
		switch t := t.(type) {
		case xml.StartElement:
			return Feedback{}, fmt.Errorf("XML: element <%s> after </feedback>", mailtext.Printable(t.Name.Local))
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return Feedback{}, errors.New("XML: text after </feedback>")
			}
		}
		if err == io.EOF {
			return fb, normalize(&fb)
		}
	}
	var re *readError
	switch {
	case errors.As(err, &re):
		return Feedback{}, re // the layer that failed, or a limit
	case err == io.EOF:
		return Feedback{}, errors.New("XML: no <feedback> element")
	}
	return Feedback{}, fmt.Errorf("XML: %s", mailtext.Printable(err.Error()))
}

// guard passes the decoder's tokens on, enforcing the element limits and
// refusing DTDs.
type guard struct {
	d           *xml.Decoder
	lim         Limits
	maxElements int64
	depth       int
	elements    int64
	records     int
}

func (g *guard) Token() (xml.Token, error) {
	t, err := g.d.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case xml.Directive:
		// encoding/xml expands no entity a DTD declares, so billion
		// laughs and external entities fail anyway, as unknown entities;
		// a report has no use for a DTD, and refusing says why.
		return nil, &readError{errors.New("XML with a DOCTYPE or other <!...> declaration (refused: entities)")}
	case xml.StartElement:
		g.depth++
		g.elements++
		switch {
		case g.depth > g.lim.MaxDepth:
			return nil, &readError{fmt.Errorf("XML nested deeper than %d elements", g.lim.MaxDepth)}
		case g.elements > g.maxElements:
			return nil, &readError{fmt.Errorf("more than %d XML elements", g.maxElements)}
		case g.depth == 2 && t.Name.Local == "record":
			g.records++
			if g.records > g.lim.MaxRecords {
				return nil, &readError{fmt.Errorf("more than %d records", g.lim.MaxRecords)}
			}
		}
	case xml.EndElement:
		g.depth--
	}
	return t, nil
}

// charsetReader lets encoding/xml read the encodings that real reports
// declare besides UTF-8.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii": // ASCII is UTF-8; other bytes fail as bad UTF-8
		return in, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1":
		return charmap.ISO8859_1.NewDecoder().Reader(in), nil
	case "windows-1252", "cp1252":
		return charmap.Windows1252.NewDecoder().Reader(in), nil
	}
	return nil, fmt.Errorf("unsupported XML encoding %q", mailtext.Printable(label))
}

// normalize checks what the store and `vouch reports` rely on and puts
// the report in one form: text trimmed, domains and keywords lower-case,
// IP addresses in netip's form, no namespace.
func normalize(fb *Feedback) error {
	fb.XMLName = xml.Name{Local: "feedback"}
	fb.Version = strings.TrimSpace(fb.Version)

	m := &fb.Metadata
	trim(&m.OrgName, &m.Email, &m.ExtraContactInfo, &m.ReportID)
	for i := range m.Errors {
		trim(&m.Errors[i])
	}
	switch dr := m.DateRange; {
	case m.OrgName == "":
		return errors.New("report_metadata without org_name")
	case m.ReportID == "":
		return errors.New("report_metadata without report_id")
	case dr.Begin > dr.End:
		return fmt.Errorf("date_range begins (%d) after it ends (%d)", dr.Begin, dr.End)
	case dr.Begin < minReportTime || dr.End >= maxReportTime:
		return fmt.Errorf("date_range %d-%d is not between 2000 and 2100", dr.Begin, dr.End)
	case dr.End-dr.Begin > maxReportSpan:
		return fmt.Errorf("date_range %d-%d is longer than a year", dr.Begin, dr.End)
	}

	pol := &fb.Policy
	lower(&pol.Domain, &pol.ADKIM, &pol.ASPF, &pol.P, &pol.SP, &pol.FO)
	pol.Domain = strings.TrimSuffix(pol.Domain, ".")
	if !mailtext.ValidDomain(pol.Domain) {
		return fmt.Errorf("policy_published domain %q is not a domain name", mailtext.Printable(pol.Domain))
	}

	for i := range fb.Records {
		rec := &fb.Records[i]
		row := &rec.Row
		ip, err := netip.ParseAddr(strings.TrimSpace(row.SourceIP))
		if err != nil || ip.Zone() != "" {
			return fmt.Errorf("record %d: source_ip %q is not an IP address", i+1, mailtext.Printable(row.SourceIP))
		}
		row.SourceIP = ip.Unmap().String()
		if row.Count < 0 || row.Count > maxCount {
			return fmt.Errorf("record %d: count %d is not between 0 and %d", i+1, row.Count, maxCount)
		}
		pe := &row.PolicyEvaluated
		lower(&pe.Disposition, &pe.DKIM, &pe.SPF)
		for j := range pe.Reasons {
			lower(&pe.Reasons[j].Type)
			trim(&pe.Reasons[j].Comment)
		}
		id := &rec.Identifiers
		lower(&id.EnvelopeTo, &id.EnvelopeFrom, &id.HeaderFrom)
		for j := range rec.AuthResults.DKIM {
			dk := &rec.AuthResults.DKIM[j]
			lower(&dk.Domain, &dk.Selector, &dk.Result)
			trim(&dk.HumanResult)
		}
		for j := range rec.AuthResults.SPF {
			spf := &rec.AuthResults.SPF[j]
			lower(&spf.Domain, &spf.Scope, &spf.Result)
		}
	}
	return nil
}

func trim(ss ...*string) {
	for _, s := range ss {
		*s = strings.TrimSpace(*s)
	}
}

// lower trims and lower-cases domains and keywords.
func lower(ss ...*string) {
	for _, s := range ss {
		*s = strings.ToLower(strings.TrimSpace(*s))
	}
}

// readError is a failure of one layer under the XML decoder (a transfer
// encoding, gzip, zip, a size limit). The layers above pass it on
// unchanged, so that the error names the layer that failed.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

// layer names the errors of the reader it wraps.
type layer struct {
	r    io.Reader
	name string
}

func (l layer) Read(b []byte) (int, error) {
	n, err := l.r.Read(b)
	var re *readError
	if err != nil && err != io.EOF && !errors.As(err, &re) {
		msg := mailtext.Printable(err.Error())
		if !strings.HasPrefix(msg, l.name+": ") { // "gzip: invalid checksum"
			msg = l.name + ": " + msg
		}
		err = &readError{errors.New(msg)}
	}
	return n, err
}

// capReader reads at most n bytes of r, and fails with err (over set) if
// r has more.
type capReader struct {
	r    io.Reader
	n    int64
	err  error
	over bool
}

func (c *capReader) Read(b []byte) (int, error) {
	if c.n <= 0 {
		// At the limit: one more byte means r is too large, EOF that it
		// is not.
		var one [1]byte
		if _, err := io.ReadAtLeast(c.r, one[:], 1); err != nil {
			return 0, err
		}
		c.over = true
		return 0, &readError{c.err}
	}
	if int64(len(b)) > c.n {
		b = b[:c.n]
	}
	n, err := c.r.Read(b)
	c.n -= int64(n)
	return n, err
}

// problems are what went wrong with the parts of a message, one text
// each; as an error they say as many as fit into maxErrorLen bytes.
type problems []string

func (ps problems) Error() string {
	var b strings.Builder
	for i, s := range ps {
		if i > 0 {
			// 20 bytes left for "; and 400 more" (50 parts of 8 files).
			if b.Len()+2+len(s)+20 > maxErrorLen {
				fmt.Fprintf(&b, "; and %d more", len(ps)-i)
				break
			}
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// cut keeps an error text within maxProblemLen bytes.
func cut(s string) string {
	if len(s) <= maxProblemLen {
		return s
	}
	return s[:maxProblemLen-3] + "..."
}
