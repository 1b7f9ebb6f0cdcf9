package config

import (
	"testing"

	"vouch/internal/testutil"
)

// TestDMARCReportsValidation: every [dmarc_reports] mistake names its key.
func TestDMARCReportsValidation(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string
	}{
		{"store", "[dmarc_reports]\nstore = \"sqlite\"\n", []string{`dmarc_reports.store: "sqlite" is not bolt or redis`}},
		{"relative path", "[dmarc_reports]\npath = \"reports.db\"\n", []string{`dmarc_reports.path: "reports.db" is not an absolute path`}},
		{"redis without url", "[dmarc_reports]\nstore = \"redis\"\nredis_url = \"\"\n", []string{"dmarc_reports.redis_url: must be set"}},
		{"send_at", "[dmarc_reports]\nsend_at = \"0:30pm\"\n", []string{`dmarc_reports.send_at: "0:30pm" is not HH:MM`}},
		{"sending needs identity", "[dmarc_reports]\nenabled = true\n", []string{"dmarc_reports.org_name: must be set", "dmarc_reports.from: must be set"}},
		{"from with a name", "[dmarc_reports]\nfrom = \"DMARC <d@example.com>\"\n", []string{`dmarc_reports.from: "DMARC <d@example.com>" is not an address`}},
		{"sizes", "[dmarc_reports]\nmax_report_size = 0\nmax_message_size = -1\nmax_xml_size = 0\n", []string{
			"dmarc_reports.max_report_size: must be positive", "dmarc_reports.max_message_size: must be positive", "dmarc_reports.max_xml_size: must be positive"}},
		{"durations", "[dmarc_reports]\nretry_for = \"0s\"\n", []string{"dmarc_reports.retry_for and keep_received: must be positive"}},
		{"smtp", "[dmarc_reports]\nsmtp = \"localhost\"\n", []string{`dmarc_reports.smtp: "localhost" is not host:port`}},
		{"mailboxes", "[dmarc_reports]\nrua_mailboxes = [\"dmarc@example.com\", \"dmarc\", \"<x@example.com>\", \"a@b@example.com\"]\n", []string{
			`dmarc_reports.rua_mailboxes[1]: "dmarc" is not an address`, `rua_mailboxes[2]: "<x@example.com>"`, `rua_mailboxes[3]: "a@b@example.com"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(testutil.WriteTemp(t, "vouch.toml", tc.content))
			testutil.ErrorMentions(t, err, tc.want...)
		})
	}
	good := "[dmarc_reports]\nenabled = true\norg_name = \"Example\"\nfrom = \"dmarc-reports@example.com\"\nrua_mailboxes = [\"DMARC@example.com\"]\n"
	if _, err := Load(testutil.WriteTemp(t, "vouch.toml", good)); err != nil {
		t.Errorf("a good section: %v", err)
	}
	if _, err := Load(testutil.WriteTemp(t, "vouch.toml", "[dmarc_reports]\nenabled = true\nsend = false\n")); err != nil {
		t.Errorf("receiving only needs no identity: %v", err)
	}
}
