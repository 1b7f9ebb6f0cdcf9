package verify

import (
	"strings"
	"testing"
)

func TestClaimsAuthServID(t *testing.T) {
	const ours = "mx.local.test"
	for _, tc := range []struct {
		value string
		want  bool
	}{
		{" mx.local.test; dkim=pass", true},
		{"mx.local.test;dkim=pass", true},
		{" MX.Local.TEST; dkim=pass", true},
		{` "mx.local.test"; dkim=pass`, true},              // RFC 8601 §2.2: a quoted-string
		{` "MX.local.test" 1; dkim=pass`, true},            // with a version
		{` "mx.lo\cal.test"; dkim=pass`, true},             // quoted-pair
		{" (comment) mx.local.test; dkim=pass", true},      // CFWS before it
		{" (a (nested \\) one)) mx.local.test; x=y", true}, // nested comment, quoted-pair
		{"\n\t(folded)\n\t mx.local.test; dkim=pass", true},
		{" mx.local.test(comment); dkim=pass", true},
		{" mx.local.test; none", true},
		{" mx.local.test", true},
		{" other.test; dkim=pass", false},
		{" (mx.local.test) other.test; dkim=pass", false},
		{` "mx.local.test.evil"; dkim=pass`, false},
		{" mx.local.test.evil; dkim=pass", false},
		{" xmx.local.test; dkim=pass", false},
		{` "mx.local.test`, false}, // unterminated
		{" (mx.local.test; dkim=pass", false},
		{"", false},
		{" ; dkim=pass", false},
	} {
		if got := ClaimsAuthServID(tc.value, ours); got != tc.want {
			t.Errorf("ClaimsAuthServID(%q) = %v, want %v", tc.value, got, tc.want)
		}
	}
}

// FuzzClaimsAuthServID spells an authserv-id in a legal way the fuzzer
// picks (comments, folding, token or quoted-string, quoted-pairs, case)
// and checks that ClaimsAuthServID finds it for our id in any case and
// never for an id that differs from ours.
func FuzzClaimsAuthServID(f *testing.F) {
	f.Add("mx.local.test", "mx.local.test", []byte{0}, "; dkim=pass")
	f.Add("mx.local.test", "MX.LOCAL.TEST", []byte{1, 2, 3, 4}, " 1; spf=pass")
	f.Add("mx.local.test", "other.test", []byte{255, 17, 33, 9}, "(x); none")
	f.Add("mx.local.test", "mx.local.test.", []byte{7, 7, 7}, "")
	f.Add("mx.local.test", `a"b\c d`, []byte{3}, ";")
	f.Fuzz(func(t *testing.T, ours, id string, shape []byte, rest string) {
		if !printable(ours) || !printable(id) || ours == "" || id == "" {
			return // header values are 7-bit; our id comes from the config
		}
		value := spell(id, shape, rest)
		got := ClaimsAuthServID(value, ours)
		if want := strings.EqualFold(id, ours); got != want {
			t.Fatalf("ClaimsAuthServID(%q, %q) = %v, want %v (id %q)", value, ours, got, want, id)
		}
	})
}

// spell writes "[CFWS] authserv-id [CFWS] rest" the way shape says. An id
// that is not a token is always quoted; a token may be quoted too.
func spell(id string, shape []byte, rest string) string {
	at := func(i int) byte {
		if i < len(shape) {
			return shape[i]
		}
		return 0
	}
	var b strings.Builder
	// CFWS before: spaces, folding, comments that nest and hold quoted-pairs.
	for i := range int(at(0) % 4) {
		switch at(1+i) % 4 {
		case 0:
			b.WriteString(" ")
		case 1:
			b.WriteString("\r\n\t")
		case 2:
			b.WriteString("(" + strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(id) + ")")
		case 3:
			b.WriteString("(a (nested \\) comment))")
		}
	}
	if isRFC2045Token(id) && at(5)%2 == 0 {
		b.WriteString(id)
	} else {
		b.WriteByte('"')
		for i := 0; i < len(id); i++ {
			c := id[i]
			if c == '"' || c == '\\' || at(6+i%8)&(1<<(i%7)) != 0 {
				b.WriteByte('\\') // a quoted-pair for any character is legal
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	}
	// Something that ends the id: CFWS or ";".
	switch at(14) % 3 {
	case 0:
		b.WriteString(";")
	case 1:
		b.WriteString(" ")
	case 2:
		b.WriteString("(c)")
	}
	b.WriteString(rest)
	return b.String()
}

func printable(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
