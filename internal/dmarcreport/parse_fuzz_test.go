package dmarcreport

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseReportMessage: whatever the mail, ParseMessage returns only
// reports that hold the invariants of normalize and survive being written
// as XML and read again unchanged (checkFeedback), and an error text of
// at most 1000 bytes of printable ASCII.
func FuzzParseReportMessage(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "received", "*.eml"))
	if len(files) == 0 {
		f.Fatal("no testdata/received/*.eml")
	}
	for _, name := range files {
		mail, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(mail)
	}
	// XML right in the body (7bit), for the fuzzer to change directly.
	single := func(ctype, body string) []byte {
		return []byte("From: r@org.example\r\nSubject: Report\r\nContent-Type: " + ctype + "\r\n\r\n" + body)
	}
	f.Add(single("text/xml", minimalXML))
	f.Add(single("application/xml; name=y.xml", yahooXML))
	f.Add(single("text/xml", strings.Replace(dmarcbisXML, "example.com", "Example.COM.", 1)))
	f.Add(single("text/xml", string(win1252XML)))
	f.Add(single("text/xml", `<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY e SYSTEM "file:///etc/passwd">]>`+minimalXML))
	f.Add(single("multipart/mixed; boundary=b", "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: text/xml\r\n\r\n"+minimalXML+"\r\n--c--\r\n--b--\r\n"))
	lim := Limits{MaxMessage: 1 << 20, MaxXML: 1 << 20, MaxRecords: 1000, MaxDepth: 16}
	f.Fuzz(func(t *testing.T, mail []byte) {
		fbs, err := ParseMessage(bytes.NewReader(mail), lim)
		if err != nil {
			msg := err.Error()
			if len(msg) > maxErrorLen {
				t.Fatalf("error of %d bytes: %q", len(msg), msg)
			}
			for _, c := range []byte(msg) {
				if c < 0x20 || c > 0x7e {
					t.Fatalf("error not printable ASCII: %q", msg)
				}
			}
		}
		for _, fb := range fbs {
			checkFeedback(t, fb, lim)
		}
	})
}
