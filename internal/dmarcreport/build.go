package dmarcreport

import (
	"errors"
	"time"
)

// STUB (issue 18 skeleton): the outgoing-report helper replaces this file.

// Reporter is vouch's identity in the reports it sends ([dmarc_reports]
// org_name, from, extra_contact_info).
type Reporter struct {
	OrgName          string
	Email            string // report_metadata email, and the report mail's From
	ExtraContactInfo string
}

// Build makes the report of one period, read at now (the end of its date
// range when the day has not ended).
func Build(rep Reporter, a Aggregate, now time.Time) *Feedback {
	return &Feedback{Metadata: ReportMetadata{OrgName: rep.OrgName, Email: rep.Email}, Policy: a.Policy, Records: a.Records}
}

// Encode is the report as gzipped XML and its RFC 7489 §7.2.1.1 file name.
func Encode(rep Reporter, fb *Feedback) (gz []byte, filename string, err error) {
	return nil, "", errors.New("not built yet")
}

// ReportMail is the mail that carries a report to the rua= addresses in to.
func ReportMail(rep Reporter, fb *Feedback, gz []byte, filename string, to []string, now time.Time) []byte {
	return nil
}
