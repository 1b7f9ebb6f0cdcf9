package dmarcreport

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/base64"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"vouch/internal/mailtext"
)

var updateReceived = flag.Bool("update-received", false, "rewrite testdata/received/*.eml from receivedShapes")

// part is one MIME part of a test mail: its Content-Type, file name (for
// Content-Disposition), transfer encoding and content before encoding.
type part struct {
	ctype, name, cte string
	data             []byte
}

// reportMail builds a report mail as receivers send them: with one part,
// that part is the whole body; with more, a multipart/mixed. eol is
// "\r\n" or "\n".
func reportMail(from, subject, eol string, parts ...part) []byte {
	var b strings.Builder
	line := func(format string, args ...any) { b.WriteString(fmt.Sprintf(format, args...) + eol) }
	line("From: %s", from)
	line("To: dmarc@example.com")
	line("Subject: %s", subject)
	line("Date: Sat, 06 Dec 2026 03:12:44 +0000")
	line("Message-ID: <%x@%s>", len(subject)*7919, strings.Split(from, "@")[1])
	line("MIME-Version: 1.0")
	writePart := func(p part) {
		line("Content-Type: %s", p.ctype)
		if p.name != "" {
			line("Content-Disposition: attachment; filename=\"%s\"", p.name)
		}
		if p.cte != "" {
			line("Content-Transfer-Encoding: %s", p.cte)
		}
		line("")
		b.WriteString(encodeBody(p.cte, p.data, eol))
	}
	if len(parts) == 1 {
		writePart(parts[0])
		return []byte(b.String())
	}
	boundary := fmt.Sprintf("----=_Part_%d_1764990764", len(subject)) // differs in a forwarded report
	line("Content-Type: multipart/mixed; boundary=\"%s\"", boundary)
	line("")
	line("This is a multi-part message in MIME format.")
	for _, p := range parts {
		line("--%s", boundary)
		writePart(p)
		line("")
	}
	line("--%s--", boundary)
	return []byte(b.String())
}

func encodeBody(cte string, data []byte, eol string) string {
	switch cte {
	case "base64":
		s := base64.StdEncoding.EncodeToString(data)
		var b strings.Builder
		for len(s) > 76 {
			b.WriteString(s[:76] + eol)
			s = s[76:]
		}
		return b.String() + s + eol
	case "quoted-printable":
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		w.Write(data)
		w.Close()
		return strings.ReplaceAll(b.String(), "\r\n", eol) + eol
	}
	return strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n", eol)
}

func gzipped(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func zipped(name string, data []byte) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, _ := w.Create(name)
	f.Write(data)
	w.Close()
	return b.Bytes()
}

const googleXML = `<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>
    <report_id>15843213957723109264</report_id>
    <date_range>
      <begin>1764892800</begin>
      <end>1764979199</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>Example.COM</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>none</p>
    <sp>none</sp>
    <pct>100</pct>
    <np>none</np>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.10</source_ip>
      <count>3</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>pass</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>example.com</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>example.com</domain>
        <result>pass</result>
        <selector>mail2026</selector>
      </dkim>
      <spf>
        <domain>example.com</domain>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>2001:DB8::25</source_ip>
      <count>1</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>fail</dkim>
        <spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>example.com</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>example.com</domain>
        <result>fail</result>
        <selector>mail2026</selector>
      </dkim>
      <spf>
        <domain>mx.forwarder.example</domain>
        <result>SoftFail</result>
      </spf>
    </auth_results>
  </record>
</feedback>
`

const microsoftXML = `<?xml version="1.0"?>
<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <version>1.0</version>
  <report_metadata>
    <org_name>Enterprise Outlook</org_name>
    <email>dmarcreport@microsoft.com</email>
    <report_id>5f1e3cbb0d8a4f0c9b8e7d6c5b4a3921</report_id>
    <date_range>
      <begin>1764892800</begin>
      <end>1764979200</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>example.com</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>quarantine</p>
    <sp>quarantine</sp>
    <pct>100</pct>
    <fo>0</fo>
  </policy_published>
  <record>
    <row>
      <source_ip>198.51.100.7</source_ip>
      <count>2</count>
      <policy_evaluated>
        <disposition>quarantine</disposition>
        <dkim>fail</dkim>
        <spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <envelope_to>outlook.com</envelope_to>
      <envelope_from>example.com</envelope_from>
      <header_from>example.com</header_from>
    </identifiers>
    <auth_results>
      <spf>
        <domain>example.com</domain>
        <scope>mfrom</scope>
        <result>softfail</result>
      </spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>::ffff:192.0.2.10</source_ip>
      <count>14</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>pass</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <envelope_to>hotmail.com</envelope_to>
      <envelope_from>example.com</envelope_from>
      <header_from>example.com</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>example.com</domain>
        <selector>mail2026</selector>
        <result>pass</result>
      </dkim>
      <spf>
        <domain>example.com</domain>
        <scope>mfrom</scope>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
</feedback>`

// Yahoo writes no spaces between elements.
const yahooXML = `<?xml version="1.0"?><feedback><report_metadata><org_name>Yahoo</org_name><email>dmarchelp@yahooinc.com</email><report_id>1764983401.812345</report_id><date_range><begin>1764892800</begin><end>1764979199</end></date_range></report_metadata><policy_published><domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>reject</p><pct>100</pct></policy_published>` +
	`<record><row><source_ip>192.0.2.10</source_ip><count>5</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim><domain>example.com</domain><selector>mail2026</selector><result>pass</result></dkim><dkim><domain>esp.example.net</domain><selector>s1024</selector><result>pass</result></dkim><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>` +
	`<record><row><source_ip>192.0.2.11</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim><domain>example.com</domain><selector>mail2026</selector><result>pass</result></dkim><spf><domain>bounce.example.com</domain><result>none</result></spf></auth_results></record>` +
	`<record><row><source_ip>203.0.113.99</source_ip><count>7</count><policy_evaluated><disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim><domain>example.com</domain><selector>mail2026</selector><result>permerror</result></dkim><spf><domain>spammer.example</domain><result>fail</result></spf></auth_results></record>` +
	`<record><row><source_ip>2001:db8:1::5</source_ip><count>2</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf><reason><type>forwarded</type><comment>list</comment></reason></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim><domain>example.com</domain><selector>mail2026</selector><result>pass</result></dkim><spf><domain>lists.example.org</domain><result>pass</result></spf></auth_results></record></feedback>`

// DMARCbis: a namespace, and elements RFC 7489 has not (ignored).
const dmarcbisXML = `<?xml version="1.0" encoding="UTF-8"?>
<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">
  <version>1.0</version>
  <report_metadata>
    <org_name>mail.example.net</org_name>
    <email>dmarc-reports@mail.example.net</email>
    <report_id>example.com-20261205</report_id>
    <date_range><begin>1764892800</begin><end>1764979199</end></date_range>
    <generator>vouch-like 1.0</generator>
  </report_metadata>
  <policy_published>
    <domain>example.com</domain>
    <p>reject</p>
    <sp>reject</sp>
    <np>reject</np>
    <adkim>s</adkim>
    <aspf>s</aspf>
    <discovery_method>treewalk</discovery_method>
    <testing>n</testing>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.10</source_ip>
      <count>9</count>
      <policy_evaluated><disposition>pass</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>
    </row>
    <identifiers><envelope_from>example.com</envelope_from><header_from>example.com</header_from></identifiers>
    <auth_results>
      <dkim><domain>example.com</domain><selector>mail2026</selector><result>pass</result></dkim>
      <spf><domain>example.com</domain><scope>mfrom</scope><result>pass</result></spf>
    </auth_results>
  </record>
</feedback>
`

// The draft's namespace, no DKIM results at all.
const noDKIMXML = `<?xml version="1.0" encoding="us-ascii"?>
<feedback xmlns="http://dmarc.org/dmarc-xml/0.1">
  <report_metadata>
    <org_name>Mail.Ru</org_name>
    <email>dmarc_support@corp.mail.ru</email>
    <report_id>41521377381764892800</report_id>
    <date_range><begin>1764892800</begin><end>1764979200</end></date_range>
  </report_metadata>
  <policy_published><domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record>
    <row><source_ip>203.0.113.5</source_ip><count>4</count><policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>example.com</domain><scope>mfrom</scope><result>pass</result></spf></auth_results>
  </record>
</feedback>
`

// windows-1252: é (E9), ü (FC) and a curly quote (93, 94).
var win1252XML = []byte("<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<feedback><report_metadata><org_name>T\xe9l\xe9com S\xfcd</org_name><email>dmarc@telecom-sud.example</email>" +
	"<extra_contact_info>\x93Postmaster\x94</extra_contact_info><report_id>tsud-1764892800</report_id><date_range><begin>1764892800</begin><end>1764979199</end></date_range></report_metadata>" +
	"<policy_published><domain>example.com</domain><p>none</p><pct>100</pct></policy_published>" +
	"<record><row><source_ip>192.0.2.10</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>" +
	"<identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim><domain>example.com</domain><selector>mail2026</selector><result>pass</result></dkim><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record></feedback>\n")

const reportText = "This is an aggregate report from %s.\r\n\r\nReport domain: example.com\r\n"

// receivedShapes are the report mails of testdata/received/, as the big
// receivers send them (`go test -run TestReceivedShapes -update-received`
// writes them): the file name, the mail, and what ParseMessage must make
// of it (see summary).
func receivedShapes() []struct {
	file string
	mail []byte
	want string
} {
	const gname = "google.com!example.com!1764892800!1764979199"
	const mname = "enterprise.protection.outlook.com!example.com!1764892800!1764979200"
	const yname = "yahoo.com!example.com!1764892800!1764979199"
	google := reportMail("noreply-dmarc-support@google.com", "Report domain: example.com Submitter: google.com Report-ID: 15843213957723109264", "\r\n",
		part{ctype: "text/plain; charset=UTF-8; format=flowed; delsp=yes", data: []byte("\r\n")},
		part{ctype: "application/zip; name=\"" + gname + ".zip\"", name: gname + ".zip", cte: "base64", data: zipped(gname+".xml", []byte(googleXML))})
	return []struct {
		file string
		mail []byte
		want string
	}{
		{"google.eml", google,
			"google.com 15843213957723109264 example.com p=none 1764892800-1764979199\n" +
				"192.0.2.10 3 none dkim=pass spf=pass from=example.com dkim:example.com/mail2026=pass spf:example.com=pass\n" +
				"2001:db8::25 1 none dkim=fail spf=fail from=example.com dkim:example.com/mail2026=fail spf:mx.forwarder.example=softfail\n"},
		{"microsoft.eml", reportMail("dmarcreport@microsoft.com", "Report Domain: example.com Submitter: enterprise.protection.outlook.com Report-ID: <5f1e3cbb0d8a4f0c9b8e7d6c5b4a3921>", "\r\n",
			part{ctype: "text/plain; charset=\"us-ascii\"", cte: "7bit", data: []byte(fmt.Sprintf(reportText, "Microsoft Corporation"))},
			part{ctype: "application/gzip; name=\"" + mname + ".xml.gz\"", name: mname + ".xml.gz", cte: "base64", data: gzipped([]byte(microsoftXML))}),
			"Enterprise Outlook 5f1e3cbb0d8a4f0c9b8e7d6c5b4a3921 example.com p=quarantine 1764892800-1764979200\n" +
				"198.51.100.7 2 quarantine dkim=fail spf=fail from=example.com to=outlook.com spf:example.com/mfrom=softfail\n" +
				"192.0.2.10 14 none dkim=pass spf=pass from=example.com to=hotmail.com dkim:example.com/mail2026=pass spf:example.com/mfrom=pass\n"},
		{"yahoo.eml", reportMail("noreply@dmarc.yahoo.com", "Report Domain: example.com Submitter: yahoo.com Report-ID: <1764983401.812345>", "\r\n",
			part{ctype: "application/gzip; name=\"" + yname + ".xml.gz\"", name: yname + ".xml.gz", cte: "base64", data: gzipped([]byte(yahooXML))}),
			"Yahoo 1764983401.812345 example.com p=reject 1764892800-1764979199\n" +
				"192.0.2.10 5 none dkim=pass spf=pass from=example.com dkim:example.com/mail2026=pass dkim:esp.example.net/s1024=pass spf:example.com=pass\n" +
				"192.0.2.11 1 none dkim=pass spf=fail from=example.com dkim:example.com/mail2026=pass spf:bounce.example.com=none\n" +
				"203.0.113.99 7 reject dkim=fail spf=fail from=example.com dkim:example.com/mail2026=permerror spf:spammer.example=fail\n" +
				"2001:db8:1::5 2 none dkim=pass spf=fail reason=forwarded from=example.com dkim:example.com/mail2026=pass spf:lists.example.org=pass\n"},
		{"plain-xml-dmarcbis.eml", reportMail("dmarc-reports@mail.example.net", "Report Domain: example.com Submitter: mail.example.net", "\r\n",
			part{ctype: "text/plain", data: []byte("DMARC aggregate report.\r\n")},
			part{ctype: "text/xml; name=\"mail.example.net!example.com!1764892800!1764979199.xml\"", name: "mail.example.net!example.com!1764892800!1764979199.xml", cte: "7bit", data: []byte(dmarcbisXML)}),
			"mail.example.net example.com-20261205 example.com p=reject 1764892800-1764979199\n" +
				"192.0.2.10 9 pass dkim=pass spf=pass from=example.com dkim:example.com/mail2026=pass spf:example.com/mfrom=pass\n"},
		{"octet-stream-no-dkim-lf.eml", reportMail("dmarc_support@corp.mail.ru", "Report Domain: example.com Submitter: Mail.Ru", "\n",
			part{ctype: "application/octet-stream", name: "mail.ru!example.com!1764892800!1764979200.xml.gz", cte: "base64", data: gzipped([]byte(noDKIMXML))}),
			"Mail.Ru 41521377381764892800 example.com p=none 1764892800-1764979200\n" +
				"203.0.113.5 4 none dkim=fail spf=pass from=example.com spf:example.com/mfrom=pass\n"},
		{"windows-1252.eml", reportMail("dmarc@telecom-sud.example", "Report Domain: example.com", "\r\n",
			part{ctype: "text/plain", data: []byte("Rapport DMARC.\r\n")},
			part{ctype: "application/xml", name: "telecom-sud.example!example.com!1764892800!1764979199.xml", cte: "quoted-printable", data: win1252XML}),
			"Télécom Süd tsud-1764892800 example.com p=none 1764892800-1764979199 “Postmaster”\n" +
				"192.0.2.10 1 none dkim=pass spf=pass from=example.com dkim:example.com/mail2026=pass spf:example.com=pass\n"},
		{"forwarded.eml", reportMail("admin@example.com", "Fwd: Report domain: example.com Submitter: google.com", "\r\n",
			part{ctype: "text/plain", data: []byte("See the attached report.\r\n")},
			part{ctype: "message/rfc822", data: google}),
			"google.com 15843213957723109264 example.com p=none 1764892800-1764979199\n" +
				"192.0.2.10 3 none dkim=pass spf=pass from=example.com dkim:example.com/mail2026=pass spf:example.com=pass\n" +
				"2001:db8::25 1 none dkim=fail spf=fail from=example.com dkim:example.com/mail2026=fail spf:mx.forwarder.example=softfail\n"},
	}
}

// summary puts what a test checks of a report on lines: the metadata and
// policy, then one line per record.
func summary(fb Feedback) string {
	m := fb.Metadata
	s := fmt.Sprintf("%s %s %s p=%s %d-%d", m.OrgName, m.ReportID, fb.Policy.Domain, fb.Policy.P, m.DateRange.Begin, m.DateRange.End)
	if m.ExtraContactInfo != "" && !strings.HasPrefix(m.ExtraContactInfo, "http") {
		s += " " + m.ExtraContactInfo
	}
	s += "\n"
	for _, r := range fb.Records {
		pe := r.Row.PolicyEvaluated
		s += fmt.Sprintf("%s %d %s dkim=%s spf=%s", r.Row.SourceIP, r.Row.Count, pe.Disposition, pe.DKIM, pe.SPF)
		for _, o := range pe.Reasons {
			s += " reason=" + o.Type
		}
		s += " from=" + r.Identifiers.HeaderFrom
		if r.Identifiers.EnvelopeTo != "" {
			s += " to=" + r.Identifiers.EnvelopeTo
		}
		for _, d := range r.AuthResults.DKIM {
			s += fmt.Sprintf(" dkim:%s/%s=%s", d.Domain, d.Selector, d.Result)
		}
		for _, p := range r.AuthResults.SPF {
			if p.Scope != "" {
				p.Domain += "/" + p.Scope
			}
			s += fmt.Sprintf(" spf:%s=%s", p.Domain, p.Result)
		}
		s += "\n"
	}
	return s
}

func TestReceivedShapes(t *testing.T) {
	for _, c := range receivedShapes() {
		path := filepath.Join("testdata", "received", c.file)
		if *updateReceived {
			if err := os.WriteFile(path, c.mail, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(c.file, func(t *testing.T) {
			mail, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -run TestReceivedShapes -update-received writes it)", err)
			}
			fbs, err := ParseMessage(bytes.NewReader(mail), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(fbs) != 1 {
				t.Fatalf("%d reports, want 1", len(fbs))
			}
			if got := summary(fbs[0]); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
			checkFeedback(t, fbs[0], Limits{})
		})
	}
}

// checkFeedback asserts what ParseMessage promises of every report it
// returns: the invariants of normalize, and that the report survives
// being written as XML and read again unchanged.
func checkFeedback(t *testing.T, fb Feedback, lim Limits) {
	t.Helper()
	if err := normalizedForm(fb); err != nil {
		t.Fatalf("%v in %+v", err, fb)
	}
	x, err := xml.Marshal(fb)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseFeedback(bytes.NewReader(x), lim)
	if err != nil {
		t.Fatalf("parsing the report written again: %v\n%s", err, x)
	}
	if !reflect.DeepEqual(fb, again) {
		t.Fatalf("written and parsed again, the report differs:\n%#v\n%#v", fb, again)
	}
}

// normalizedForm checks the invariants independently of normalize.
func normalizedForm(fb Feedback) error {
	m := fb.Metadata
	switch {
	case fb.XMLName != xml.Name{Local: "feedback"}:
		return fmt.Errorf("XMLName %v", fb.XMLName)
	case !mailtext.ValidDomain(fb.Policy.Domain) || fb.Policy.Domain != strings.ToLower(fb.Policy.Domain):
		return fmt.Errorf("domain %q", fb.Policy.Domain)
	case strings.TrimSpace(m.OrgName) == "" || strings.TrimSpace(m.ReportID) == "":
		return fmt.Errorf("org_name %q, report_id %q", m.OrgName, m.ReportID)
	case m.DateRange.Begin > m.DateRange.End || m.DateRange.Begin < minReportTime || m.DateRange.End >= maxReportTime:
		return fmt.Errorf("date_range %+v", m.DateRange)
	}
	for _, r := range fb.Records {
		ip, err := netip.ParseAddr(r.Row.SourceIP)
		if err != nil || ip.String() != r.Row.SourceIP {
			return fmt.Errorf("source_ip %q", r.Row.SourceIP)
		}
		if r.Row.Count < 0 || r.Row.Count > 1e9 {
			return fmt.Errorf("count %d", r.Row.Count)
		}
		pe := r.Row.PolicyEvaluated
		for _, w := range []string{pe.Disposition, pe.DKIM, pe.SPF} {
			if w != strings.ToLower(strings.TrimSpace(w)) {
				return fmt.Errorf("result %q", w)
			}
		}
		for _, d := range r.AuthResults.DKIM {
			if d.Result != strings.ToLower(strings.TrimSpace(d.Result)) {
				return fmt.Errorf("dkim result %q", d.Result)
			}
		}
		for _, s := range r.AuthResults.SPF {
			if s.Result != strings.ToLower(strings.TrimSpace(s.Result)) {
				return fmt.Errorf("spf result %q", s.Result)
			}
		}
	}
	return nil
}

// minimalXML is a valid report; the validation cases replace parts of it.
const minimalXML = `<feedback><report_metadata><org_name>Org</org_name><email>r@org.example</email><report_id>42</report_id>` +
	`<date_range><begin>1764892800</begin><end>1764979199</end></date_range></report_metadata>` +
	`<policy_published><domain>example.com</domain><p>none</p></policy_published>` +
	`<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>` +
	`<identifiers><header_from>example.com</header_from></identifiers><auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record></feedback>`

func TestParseFeedback(t *testing.T) {
	const ok = "Org 42 example.com p=none 1764892800-1764979199\n192.0.2.1 1 none dkim=pass spf=pass from=example.com spf:example.com=pass\n"
	lim := Limits{MaxXML: 64 << 10, MaxRecords: 3, MaxDepth: 8}
	records := func(n int) string {
		rec := minimalXML[strings.Index(minimalXML, "<record>"):strings.Index(minimalXML, "</feedback>")]
		return strings.Replace(minimalXML, rec, strings.Repeat(rec, n), 1)
	}
	laughs := `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>`
	for _, c := range []struct {
		name, old, new string // minimalXML with old replaced by new
		xml            string // or this
		want           string // the summary, or a text the error has
	}{
		{name: "valid", want: ok},
		{name: "normalized", old: "<domain>example.com</domain><p>none</p>", new: "<domain> Example.COM. </domain><p>NONE</p>",
			want: "Org 42 example.com p=none 1764892800-1764979199\n"},
		{name: "normalized record", old: "<source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim>",
			new: "<source_ip> ::FFFF:192.0.2.1\n</source_ip><count> 1 </count><policy_evaluated><disposition>None</disposition><dkim> PASS </dkim>", want: ok},
		{name: "ISO-8859-1", xml: `<?xml version="1.0" encoding="ISO-8859-1"?>` + strings.Replace(minimalXML, "<org_name>Org", "<org_name>Org\xe9", 1),
			want: "Org\u00e9 42 example.com"},
		{name: "no org_name", old: "<org_name>Org</org_name>", want: "without org_name"},
		{name: "blank report_id", old: "<report_id>42</report_id>", new: "<report_id> </report_id>", want: "without report_id"},
		{name: "domain not a name", old: "<domain>example.com</domain>", new: "<domain>exa mple.com</domain>", want: `domain "exa mple.com" is not a domain name`},
		{name: "domain an IP", old: "<domain>example.com</domain>", new: "<domain>192.0.2.1</domain>", want: "is not a domain name"},
		{name: "no domain", old: "<domain>example.com</domain>", want: `domain "" is not a domain name`},
		{name: "begin after end", old: "<begin>1764892800</begin>", new: "<begin>1764979200</begin>", want: "date_range begins (1764979200) after it ends (1764979199)"},
		{name: "begin 0", old: "<begin>1764892800</begin>", new: "<begin>0</begin>", want: "not between 2000 and 2100"},
		{name: "no date_range", old: "<date_range><begin>1764892800</begin><end>1764979199</end></date_range>", want: "not between 2000 and 2100"},
		{name: "two years", old: "<begin>1764892800</begin>", new: "<begin>1701820800</begin>", want: "longer than a year"},
		{name: "bad IP", old: "<source_ip>192.0.2.1</source_ip>", new: "<source_ip>192.0.2.256</source_ip>", want: `record 1: source_ip "192.0.2.256" is not an IP address`},
		{name: "IP with zone", old: "<source_ip>192.0.2.1</source_ip>", new: "<source_ip>fe80::1%eth0</source_ip>", want: "is not an IP address"},
		{name: "negative count", old: "<count>1</count>", new: "<count>-1</count>", want: "record 1: count -1 is not between 0 and 1000000000"},
		{name: "huge count", old: "<count>1</count>", new: "<count>1000000001</count>", want: "count 1000000001 is not between"},
		{name: "count not a number", old: "<count>1</count>", new: "<count>many</count>", want: `XML: strconv.ParseInt: parsing "many": invalid syntax`},
		{name: "billion laughs", xml: laughs + strings.Replace(minimalXML, "Org", "&lol2;", 1), want: "XML with a DOCTYPE"},
		{name: "external entity", xml: `<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + strings.Replace(minimalXML, "Org", "&xxe;", 1), want: "XML with a DOCTYPE"},
		{name: "undeclared entity", old: "Org", new: "&lol;", want: "XML: XML syntax error on line 1: invalid character entity &lol;"},
		{name: "too deep", old: "<p>none</p>", new: strings.Repeat("<x>", 7) + strings.Repeat("</x>", 7), want: "XML nested deeper than 8 elements"},
		{name: "3 records", xml: records(3), want: ok + ok[strings.Index(ok, "\n")+1:] + ok[strings.Index(ok, "\n")+1:]},
		{name: "too many records", xml: records(4), want: "more than 3 records"},
		{name: "too many elements", old: "<p>none</p>", new: strings.Repeat("<x/>", 4096), want: "more than 4096 XML elements"},
		{name: "too large", old: "<p>none</p>", new: "<p>" + strings.Repeat("none", 16<<10) + "</p>", want: "XML larger than 65536 bytes"},
		{name: "other root", xml: "<report><feedback/></report>", want: "XML: expected element type <feedback> but have <report>"},
		{name: "element after", xml: minimalXML + "<feedback/>", want: "XML: element <feedback> after </feedback>"},
		{name: "text after", xml: minimalXML + " x\n", want: "XML: text after </feedback>"},
		{name: "space and comment after", xml: minimalXML + "\n<!-- end -->\n", want: ok},
		{name: "EBCDIC", xml: `<?xml version="1.0" encoding="EBCDIC-US"?>` + minimalXML, want: `unsupported XML encoding "EBCDIC-US"`},
		{name: "bad UTF-8", old: "Org", new: "Org\xff", want: "invalid UTF-8"},
		{name: "empty", xml: " ", want: "XML: no <feedback> element"},
		{name: "truncated", xml: minimalXML[:100], want: "XML: XML syntax error on line 1: unexpected EOF"},
		{name: "unclosed", old: "<p>none</p>", new: "<p>none", want: "element <p> closed by </policy_published>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := c.xml
			if x == "" {
				x = strings.Replace(minimalXML, c.old, c.new, 1)
			}
			fb, err := ParseFeedback(strings.NewReader(x), lim)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = summary(fb)
				checkFeedback(t, fb, lim)
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// The namespaces of RFC 7489's schema, its draft and DMARCbis change
// nothing in the report read.
func TestParseFeedbackNamespaces(t *testing.T) {
	want, err := ParseFeedback(strings.NewReader(minimalXML), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{`xmlns="urn:ietf:params:xml:ns:dmarc-2.0"`, `xmlns="http://dmarc.org/dmarc-xml/0.1"`,
		`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="rua.xsd"`} {
		got, err := ParseFeedback(strings.NewReader(strings.Replace(minimalXML, "<feedback>", "<feedback "+ns+">", 1)), Limits{})
		if err != nil {
			t.Fatalf("%s: %v", ns, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n%#v\nwant\n%#v", ns, got, want)
		}
	}
}

// A bad attachment beside good ones: the good reports and an error about
// the bad one.
func TestParseMessagePartial(t *testing.T) {
	good := part{ctype: "application/gzip", name: "good.xml.gz", cte: "base64", data: gzipped([]byte(yahooXML))}
	good2 := part{ctype: "text/xml", name: "good2.xml", data: []byte(googleXML)}
	bad := part{ctype: "application/gzip", name: "bad.xml.gz", cte: "base64", data: gzipped([]byte(minimalXML))[:40]}
	invalid := part{ctype: "application/xml", name: "invalid.xml", data: []byte(strings.Replace(minimalXML, "<count>1", "<count>-5", 1))}
	text := part{ctype: "text/plain", data: []byte("report\r\n")}
	for _, c := range []struct {
		name    string
		parts   []part
		reports []string // org names
		err     string
	}{
		{"good and broken gzip", []part{text, good, bad}, []string{"Yahoo"}, `attachment "bad.xml.gz": gzip: unexpected EOF`},
		{"invalid and good", []part{invalid, text, good}, []string{"Yahoo"}, `attachment "invalid.xml": record 1: count -5 is not between 0 and 1000000000`},
		{"two good", []part{good2, good}, []string{"google.com", "Yahoo"}, ""},
		{"two bad", []part{bad, invalid}, nil, `attachment "bad.xml.gz": gzip: unexpected EOF; attachment "invalid.xml": record 1: count -5`},
		{"no report", []part{text, {ctype: "image/png", name: "logo.png", cte: "base64", data: []byte("\x89PNG")}}, nil, "no DMARC aggregate report (zip, gzip or XML attachment) in the message"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fbs, err := ParseMessage(bytes.NewReader(reportMail("r@org.example", c.name, "\r\n", c.parts...)), Limits{})
			var orgs []string
			for _, fb := range fbs {
				orgs = append(orgs, fb.Metadata.OrgName)
			}
			if !reflect.DeepEqual(orgs, c.reports) {
				t.Errorf("reports from %q, want %q", orgs, c.reports)
			}
			if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %v, want %q", err, c.err)
			}
		})
	}
}

// However many and however long the bad attachments, the error stays
// within 1000 bytes of printable text and says how many it left out.
func TestParseMessageErrorLength(t *testing.T) {
	var parts []part
	for i := range 40 {
		parts = append(parts, part{ctype: "text/xml", name: fmt.Sprintf("%d%s.xml", i, strings.Repeat("ü", 300)), data: []byte("<feedback>")})
	}
	_, err := ParseMessage(bytes.NewReader(reportMail("r@org.example", "many", "\r\n", parts...)), Limits{})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if len(msg) > 1000 {
		t.Errorf("%d bytes: %q", len(msg), msg)
	}
	for _, c := range msg {
		if c < 0x20 || c > 0x7e {
			t.Fatalf("not printable ASCII: %q", msg)
		}
	}
	if !strings.Contains(msg, "; and 37 more") || !strings.HasPrefix(msg, `attachment "0?????`) {
		t.Errorf("%q", msg)
	}
}

// deflateBomb is a raw deflate stream of prefix and then about mib MiB of
// unit repeated. It is built from one compressed chunk repeated: once the
// window holds only the pattern, what deflate makes of a flushed chunk of
// it decodes to that chunk after any such window, so a 1 GiB bomb costs
// what compressing 3 chunks does.
func deflateBomb(t *testing.T, prefix, unit string, mib int) []byte {
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	chunk := bytes.Repeat([]byte(unit), (1<<20)/len(unit))
	next := func(data []byte) []byte {
		w.Write(data)
		w.Flush()
		b := bytes.Clone(out.Bytes())
		out.Reset()
		return b
	}
	head := next(append([]byte(prefix), chunk...))
	mid := next(chunk)
	if !bytes.Equal(next(chunk), mid) {
		t.Fatal("deflate did not repeat itself")
	}
	w.Close()
	return append(append(head, bytes.Repeat(mid, mib-1)...), out.Bytes()...)
}

// gzipBomb wraps a deflate stream as gzip; the trailer (CRC and size) is
// never reached.
func gzipBomb(deflated []byte) []byte {
	b := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}
	return append(append(b, deflated...), 0, 0, 0, 0, 0, 0, 0, 0)
}

// zipBomb stores a deflate stream as report.xml, declaring size bytes.
func zipBomb(deflated []byte, size uint64) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, _ := w.CreateRaw(&zip.FileHeader{Name: "report.xml", Method: zip.Deflate, CompressedSize64: uint64(len(deflated)), UncompressedSize64: size})
	f.Write(deflated)
	w.Close()
	return b.Bytes()
}

// repeatReader gives n bytes of a pattern without holding them.
type repeatReader struct {
	pattern []byte
	n       int64
	off     int
}

func (r *repeatReader) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > r.n {
		b = b[:r.n]
	}
	for i := range b {
		b[i] = r.pattern[r.off]
		r.off = (r.off + 1) % len(r.pattern)
	}
	r.n -= int64(len(b))
	return len(b), nil
}

// Hostile report mails fail with an error that says why, without panic,
// and what reading them allocates in all (garbage included) stays under a
// few times the limits, whatever the 1 GiB they would unpack to.
func TestParseMessageHostile(t *testing.T) {
	const mib = 1 << 20
	lim := Limits{MaxMessage: 4 * mib, MaxXML: 4 * mib}
	const maxAlloc = 3 * 4 * mib
	attach := func(ctype, name, cte string, data []byte) func() io.Reader {
		m := reportMail("r@org.example", "hostile", "\r\n", part{ctype: "text/plain", data: []byte("x\r\n")}, part{ctype, name, cte, data})
		return func() io.Reader { return bytes.NewReader(m) }
	}
	zeros := deflateBomb(t, "", "\x00", 1024)
	spaces := deflateBomb(t, `<?xml version="1.0"?><feedback>`, " ", 1024)
	good := zipped("r.xml", []byte(googleXML))
	manyFiles := func() []byte {
		var b bytes.Buffer
		w := zip.NewWriter(&b)
		for i := range 20 {
			f, _ := w.Create(fmt.Sprintf("%d.xml", i))
			f.Write([]byte(minimalXML))
		}
		w.Close()
		return b.Bytes()
	}()
	nested := func(depth int) []byte {
		body := "Content-Type: text/xml\r\n\r\n" + minimalXML + "\r\n"
		for i := range depth {
			body = fmt.Sprintf("Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n%s--b%d--\r\n", i, i, body, i)
		}
		return []byte("From: r@org.example\r\nSubject: nested\r\nMIME-Version: 1.0\r\n" + body)
	}
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol9 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>` +
		strings.Replace(minimalXML, "Org", "&lol9;", 1)
	var thousand []part
	for range 1000 {
		thousand = append(thousand, part{ctype: "text/xml", data: []byte(minimalXML)})
	}
	for _, c := range []struct {
		name    string
		mail    func() io.Reader
		want    string
		reports int    // read before the error
		lim     Limits // instead of lim
		// Instead of maxAlloc: encoding/xml allocates ~700 bytes (garbage
		// mostly) per element, so a bomb of elements costs up to that
		// times the MaxXML/16 elements it may have.
		maxAlloc uint64
	}{
		{"zip bomb, 1 GiB declared", attach("application/zip", "r.zip", "base64", zipBomb(zeros, 1<<30)),
			`attachment "r.zip" file "report.xml": unpacks to 1073741824 bytes, more than 4194304`, 0, Limits{}, 0},
		{"zip bomb, size understated", attach("application/zip", "r.zip", "base64", zipBomb(spaces, 4*mib-1)),
			`attachment "r.zip" file "report.xml": zip: not a valid zip file`, 0, Limits{}, 0},
		{name: "zip bomb of elements", mail: attach("application/zip", "r.zip", "base64", zipBomb(deflateBomb(t, "<feedback><record><auth_results>", "<dkim/>", 1024), mib/4)),
			want: `attachment "r.zip" file "report.xml": more than 16384 XML elements`,
			lim:  Limits{MaxMessage: 4 * mib, MaxXML: mib / 4}, maxAlloc: 1024 * 16384},
		{"gzip bomb of zeros", attach("application/gzip", "r.xml.gz", "base64", gzipBomb(zeros)),
			`attachment "r.xml.gz": XML: XML syntax error on line 1: illegal character code U+0000`, 0, Limits{}, 0},
		{"gzip bomb of spaces", attach("application/gzip", "r.xml.gz", "base64", gzipBomb(spaces)),
			`attachment "r.xml.gz": XML larger than 4194304 bytes`, 0, Limits{}, 0},
		{"billion laughs", attach("text/xml", "r.xml", "", []byte(laughs)), `attachment "r.xml": XML with a DOCTYPE or other <!...> declaration (refused: entities)`, 0, Limits{}, 0},
		{"external entity", attach("text/xml", "r.xml", "", []byte(`<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY e SYSTEM "http://attacker.example/x">]><feedback>&e;</feedback>`)),
			"XML with a DOCTYPE", 0, Limits{}, 0},
		{"50 MB attachment", func() io.Reader {
			head := "From: r@org.example\r\nSubject: big\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
			return io.MultiReader(strings.NewReader(head), &repeatReader{pattern: []byte("UEsDBAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"), n: 50 * 1000 * 1000})
		}, "message larger than 4194304 bytes", 0, Limits{}, 0},
		{"broken gzip", attach("application/gzip", "r.xml.gz", "base64", append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, bytes.Repeat([]byte{0xff}, 100)...)),
			`attachment "r.xml.gz": gzip: flate: corrupt input before offset`, 0, Limits{}, 0},
		{"gzip checksum", attach("application/gzip", "r.xml.gz", "base64", func() []byte {
			b := gzipped([]byte(minimalXML))
			b[len(b)-5] ^= 1
			return b
		}()), `attachment "r.xml.gz": gzip: invalid checksum`, 0, Limits{}, 0},
		{"truncated zip", attach("application/zip", "r.zip", "base64", good[:len(good)/2]), `attachment "r.zip": zip: not a valid zip file`, 0, Limits{}, 0},
		{"zip without XML", attach("application/zip", "r.zip", "base64", zipped("r.txt", []byte(minimalXML))), `attachment "r.zip": no .xml file in the zip`, 0, Limits{}, 0},
		{"zip of 20 files", attach("application/zip", "r.zip", "base64", manyFiles), `attachment "r.zip": zip with more than 8 files`, 0, Limits{}, 0},
		{"MIME nesting bomb", func() io.Reader { return bytes.NewReader(nested(100)) }, "MIME parts nested deeper than 5 are not read", 0, Limits{}, 0},
		{name: "1000 parts", mail: func() io.Reader { return bytes.NewReader(reportMail("r@org.example", "x", "\r\n", thousand...)) },
			want: "more than 50 MIME parts: the rest is not read", reports: 49},
		{name: "unpacked total", mail: func() io.Reader {
			x := part{ctype: "text/xml", name: "r.xml", data: []byte(googleXML)} // 2 KB
			return bytes.NewReader(reportMail("r@org.example", "three", "\r\n", x, x, x))
		}, want: `attachment "r.xml": the reports of the message unpack to more than 5000 bytes`, reports: 2,
			lim: Limits{MaxMessage: 4 * mib, MaxXML: 4000, MaxUnpacked: 5000}, maxAlloc: 1 * mib},
		{"garbage", attach("application/gzip", "r.xml.gz", "base64", []byte("\x00\x01garbage")), `attachment "r.xml.gz": neither gzip, zip nor XML`, 0, Limits{}, 0},
		{"not XML", attach("text/xml", "r.xml", "", []byte("<html><body>hello</body></html>")), "XML: expected element type <feedback> but have <html>", 0, Limits{}, 0},
		{"bad base64", func() io.Reader {
			return strings.NewReader("From: r@org.example\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\r\nH4sI!!!!\r\n")
		}, `message body: base64: illegal base64 data at input byte 4`, 0, Limits{}, 0},
		{"unknown transfer encoding", attach("text/xml", "r.xml", "x-uuencode", []byte(minimalXML)), `attachment "r.xml": unknown Content-Transfer-Encoding "x-uuencode"`, 0, Limits{}, 0},
		{"no header", func() io.Reader { return strings.NewReader("<feedback/>") }, "message header: ", 0, Limits{}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			mail, l, most := c.mail(), lim, uint64(maxAlloc)
			if c.lim != (Limits{}) {
				l, most = c.lim, c.maxAlloc
			}
			if raceBuild() {
				most *= 2 // the race runtime doubles what growing a slice allocates
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			fbs, err := ParseMessage(mail, l)
			runtime.ReadMemStats(&after)
			if len(fbs) != c.reports || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%d reports, error %v; want %d and %q", len(fbs), err, c.reports, c.want)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > most {
				t.Errorf("allocated %d bytes, more than %d", n, most)
			} else {
				t.Logf("allocated %d bytes", n)
			}
		})
	}
}

func raceBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
