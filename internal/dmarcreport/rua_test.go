package dmarcreport

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseRUA(t *testing.T) {
	tests := []struct {
		in   string
		want RUA
		err  string // part of the error; "" for none
	}{
		{in: "mailto:dmarc@example.com", want: RUA{Address: "dmarc@example.com"}},
		{in: "MAILTO:Dmarc@Example.COM", want: RUA{Address: "Dmarc@example.com"}},
		{in: "mailto:dmarc@example.com!10m", want: RUA{Address: "dmarc@example.com", MaxSize: 10 << 20}},
		{in: "mailto:dmarc@example.com!1k", want: RUA{Address: "dmarc@example.com", MaxSize: 1024}},
		{in: "mailto:dmarc@example.com!2G", want: RUA{Address: "dmarc@example.com", MaxSize: 2 << 30}},
		{in: "mailto:dmarc@example.com!1t", want: RUA{Address: "dmarc@example.com", MaxSize: 1 << 40}},
		{in: "mailto:dmarc@example.com!500", want: RUA{Address: "dmarc@example.com", MaxSize: 500}},
		{in: "mailto:re%2Bports%21x@example.com!5k", want: RUA{Address: "re+ports!x@example.com", MaxSize: 5 << 10}},
		{in: "mailto:dmarc@example.com?subject=hi", want: RUA{Address: "dmarc@example.com"}},
		{in: "https://example.com/report", err: "not a mailto"},
		{in: "mailto:", err: "exactly one @"},
		{in: "mailto:dmarc@example.com!", err: "bad size"},
		{in: "mailto:dmarc@example.com!-5", err: "bad size"},
		{in: "mailto:dmarc@example.com!10x", err: "bad size"},
		{in: "mailto:dmarc@example.com!0", err: "size limit 0"},
		{in: "mailto:dmarc@example.com!99999999999t", err: "too large"},
		{in: "mailto:dmarc@example.com!99999999999999999999", err: "too large"},
		{in: "mailto:a@b@example.com", err: "exactly one @"},
		{in: "mailto:a%40b@example.com", err: "exactly one @"},
		{in: "mailto:dmarc%0D%0ABcc:x@example.com", err: "bad local part"},
		{in: "mailto:dmarc@example.com%0D%0A", err: "bad domain"},
		{in: "mailto:dmarc@localhost", err: "bad domain"},
		{in: "mailto:dmarc@192.0.2.1", err: "bad domain"},
		{in: "mailto:d%zzmarc@example.com", err: "percent-encoding"},
		{in: "mailto:@example.com", err: "bad local part"},
		{in: "mailto:a..b@example.com", err: "bad local part"},
		{in: "mailto:a b@example.com", err: "bad local part"},
	}
	for _, tt := range tests {
		got, err := ParseRUA(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRUA(%q) = %+v, %v; want error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRUA(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRUAs(t *testing.T) {
	rua, skipped := ParseRUAs([]string{
		"mailto:a@example.com!10m",
		" mailto:b@other.test , https://example.com/x",
		"mailto:A@example.com", // the same mailbox as the first
		"",
		"mailto:broken",
	})
	want := []RUA{{Address: "a@example.com", MaxSize: 10 << 20}, {Address: "b@other.test"}}
	if !reflect.DeepEqual(rua, want) {
		t.Errorf("rua %+v, want %+v", rua, want)
	}
	if len(skipped) != 2 || skipped[0].URI != "https://example.com/x" || skipped[1].URI != "mailto:broken" {
		t.Errorf("skipped %+v", skipped)
	}
	if d := rua[1].Domain(); d != "other.test" {
		t.Errorf("Domain() = %q", d)
	}
}

// FuzzParseRUA: whatever a record holds, a URI that parses has a usable
// address and a size that is not negative, and it formats to a URI that
// parses back to the same thing.
func FuzzParseRUA(f *testing.F) {
	for _, s := range []string{
		"mailto:dmarc@example.com", "mailto:re%2Bports%21x@example.com!5k", "mailto:a@b.example!1t",
		"mailto:x@y.test?subject=a!10m", "mailto:%25@example.com", "mailto:a@b.c!0", "https://x", "mailto:a%0d@b.test",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseRUA(s)
		if err != nil {
			return
		}
		if u.MaxSize < 0 {
			t.Fatalf("%q: size %d", s, u.MaxSize)
		}
		if strings.ContainsAny(u.Address, "\r\n\x00 <>,") || strings.Count(u.Address, "@") != 1 {
			t.Fatalf("%q: address %q", s, u.Address)
		}
		again, err := ParseRUA(u.String())
		if err != nil || again != u {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, u, u.String(), again, err)
		}
	})
}
