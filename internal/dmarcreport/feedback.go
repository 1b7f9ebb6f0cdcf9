package dmarcreport

import "encoding/xml"

// The types below are the aggregate report's XML (RFC 7489 Appendix C,
// with the schema's errata: envelope_from, DKIM selector and SPF scope),
// used for the reports vouch sends and the ones it receives.

// Feedback is one aggregate report.
type Feedback struct {
	XMLName  xml.Name        `xml:"feedback"`
	Version  string          `xml:"version,omitempty"`
	Metadata ReportMetadata  `xml:"report_metadata"`
	Policy   PolicyPublished `xml:"policy_published"`
	Records  []Record        `xml:"record"`
}

// ReportMetadata says who reports, and for which period.
type ReportMetadata struct {
	OrgName          string    `xml:"org_name"`
	Email            string    `xml:"email"`
	ExtraContactInfo string    `xml:"extra_contact_info,omitempty"`
	ReportID         string    `xml:"report_id"`
	DateRange        DateRange `xml:"date_range"`
	Errors           []string  `xml:"error,omitempty"`
}

// DateRange is the period in seconds since the epoch, UTC.
type DateRange struct {
	Begin int64 `xml:"begin"`
	End   int64 `xml:"end"`
}

// PolicyPublished is the DMARC record the reporter found for the domain.
type PolicyPublished struct {
	Domain string `xml:"domain"`
	ADKIM  string `xml:"adkim,omitempty"` // r or s
	ASPF   string `xml:"aspf,omitempty"`  // r or s
	P      string `xml:"p"`               // none, quarantine, reject
	SP     string `xml:"sp,omitempty"`
	Pct    int    `xml:"pct"`
	FO     string `xml:"fo,omitempty"`
}

// Record is one row of the report: Count messages that share everything
// else.
type Record struct {
	Row         Row         `xml:"row"`
	Identifiers Identifiers `xml:"identifiers"`
	AuthResults AuthResults `xml:"auth_results"`
}

// Row is the source and what DMARC made of its messages.
type Row struct {
	SourceIP        string          `xml:"source_ip"`
	Count           int64           `xml:"count"`
	PolicyEvaluated PolicyEvaluated `xml:"policy_evaluated"`
}

// PolicyEvaluated is the disposition applied and the aligned DKIM and SPF
// results (pass or fail).
type PolicyEvaluated struct {
	Disposition string           `xml:"disposition"`
	DKIM        string           `xml:"dkim"`
	SPF         string           `xml:"spf"`
	Reasons     []PolicyOverride `xml:"reason,omitempty"`
}

// PolicyOverride says why the disposition differs from the policy:
// forwarded, sampled_out, trusted_forwarder, mailing_list, local_policy,
// other.
type PolicyOverride struct {
	Type    string `xml:"type"`
	Comment string `xml:"comment,omitempty"`
}

// Identifiers are the domains of the message.
type Identifiers struct {
	EnvelopeTo   string `xml:"envelope_to,omitempty"`
	EnvelopeFrom string `xml:"envelope_from"` // required by RFC 7489's schema: empty for a null sender
	HeaderFrom   string `xml:"header_from"`
}

// AuthResults are the unaligned DKIM and SPF results.
type AuthResults struct {
	DKIM []DKIMAuthResult `xml:"dkim,omitempty"`
	SPF  []SPFAuthResult  `xml:"spf"`
}

// DKIMAuthResult is one signature's result: none, pass, fail, policy,
// neutral, temperror, permerror.
type DKIMAuthResult struct {
	Domain      string `xml:"domain"`
	Selector    string `xml:"selector,omitempty"`
	Result      string `xml:"result"`
	HumanResult string `xml:"human_result,omitempty"`
}

// SPFAuthResult is the SPF result: none, neutral, pass, fail, softfail,
// temperror, permerror; Scope is helo or mfrom.
type SPFAuthResult struct {
	Domain string `xml:"domain"`
	Scope  string `xml:"scope,omitempty"`
	Result string `xml:"result"`
}
