package opendkimconf

import (
	"os"
	"strings"
	"testing"
)

// FuzzParseConf parses an opendkim.conf and checks: parsing a reader never
// fails; every known option comes back under OpenDKIM's spelling, with a
// value that has no comment, line break or surrounding blanks; and the
// settings written back one per line parse to the same settings, with no
// problem.
func FuzzParseConf(f *testing.F) {
	debian, err := os.ReadFile("testdata/debian-bookworm.conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(debian))
	f.Add("Domain example.com\nKeyFile /etc/mail/dkim/s.private\nSelector s\nInternalHosts 192.168.10.0/24, 127.0.0.1\nMode sv\nX-Header Yes\n")
	f.Add("on-badsignature\treject # OpenDKIM's default is accept\r\nOn-DNSError tempfail\n")
	f.Add("MultipleSignatures maybe\nMaximumHeaders 12x\nBogus 1\nSyslog\n  \t# only a comment\n")
	f.Fuzz(func(t *testing.T, data string) {
		if strings.Contains(strings.ToLower(data), "include") {
			t.Skip("Include reads other files")
		}
		conf, err := Parse("fuzz.conf", strings.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		var again strings.Builder
		for _, s := range conf.Settings {
			if !s.Known || s.Name != canonical[strings.ToLower(s.Name)] {
				t.Fatalf("%s: option %q is not canonical", s.Where(), s.Name)
			}
			if s.Value == "" || strings.ContainsAny(s.Value, "#\r\n") || strings.Trim(s.Value, " \t") != s.Value {
				t.Fatalf("%s: value %q", s.Where(), s.Value)
			}
			again.WriteString(s.Name + "\t" + s.Value + "\n")
		}
		conf2, err := Parse("again.conf", strings.NewReader(again.String()))
		if err != nil {
			t.Fatal(err)
		}
		if len(conf2.Problems) > 0 || len(conf2.Settings) != len(conf.Settings) {
			t.Fatalf("re-rendered:\n%s\nproblems %v, %d settings, want %d", again.String(), conf2.Problems, len(conf2.Settings), len(conf.Settings))
		}
		for i, s := range conf2.Settings {
			if s.Name != conf.Settings[i].Name || s.Value != conf.Settings[i].Value {
				t.Fatalf("setting %d: %s %q, was %s %q", i, s.Name, s.Value, conf.Settings[i].Name, conf.Settings[i].Value)
			}
		}
	})
}
