package opendkimconf

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
)

// render writes the vouch configuration: a header listing what is not
// carried over and the notes, then only the keys that differ from vouch's
// defaults, each followed by the OpenDKIM option it comes from.
func (c *converter) render() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# vouch configuration converted from OpenDKIM's %s\n", comment(c.f.Path))
	b.WriteString("# by `vouch import-opendkim`. It names the same key, table and host files.\n")
	b.WriteString("# Check it with `vouch serve -check -config FILE` before you switch over.\n")
	b.WriteString("# After each setting: the OpenDKIM option it comes from.\n")
	if len(c.res.NotCarried) > 0 {
		fmt.Fprintf(&b, "#\n# Not carried over (%d):\n", len(c.res.NotCarried))
		for _, it := range c.res.NotCarried {
			fmt.Fprintf(&b, "#   %s\n", comment(it.String()))
		}
	}
	if len(c.res.Notes) > 0 {
		b.WriteString("#\n# Notes:\n")
		for _, it := range c.res.Notes {
			fmt.Fprintf(&b, "#   %s\n", comment(it.String()))
		}
	}
	b.WriteString("\n")
	writeLines(&b, c.top, "")
	if len(c.top) > 0 {
		b.WriteString("\n")
	}
	if len(c.dns) > 0 {
		b.WriteString("[dns]\n")
		writeLines(&b, c.dns, "")
		b.WriteString("\n")
	}
	prefix := ""
	if !c.sign {
		prefix = "# "
	}
	if len(c.signing) > 0 {
		b.WriteString("[signing]\n")
		if !c.sign {
			b.WriteString("# OpenDKIM did not sign (Mode): uncomment to sign.\n")
		}
		writeLines(&b, c.signing, prefix)
		b.WriteString("\n")
	}
	for _, k := range c.keys {
		b.WriteString(prefix + "[[signing.key]]\n")
		writeLines(&b, k, prefix)
		b.WriteString("\n")
	}
	if c.verifyOff || len(c.verify) > 0 {
		b.WriteString("[verify]\n")
		if c.verifyOff {
			b.WriteString("enabled = false  # Mode: OpenDKIM did not verify\n")
		}
		writeLines(&b, c.verify, "")
		b.WriteString("\n")
	}
	b.WriteString("[screen]\n")
	b.WriteString("# OpenDKIM does not screen inbound clients, so vouch's PTR/HELO/MAIL\n")
	b.WriteString("# screen stays off. Read README \"Screening\" before turning it on\n")
	b.WriteString("# (in trial mode first: the top-level mode above).\n")
	b.WriteString("enabled = false\n")
	return b.Bytes()
}

func writeLines(b *bytes.Buffer, lines []tomlLine, prefix string) {
	for _, l := range lines {
		fmt.Fprintf(b, "%s%s = %s", prefix, l.key, strings.ReplaceAll(l.value, "\n", "\n"+prefix))
		if l.comment != "" {
			fmt.Fprintf(b, "  # %s", comment(l.comment))
		}
		b.WriteString("\n")
	}
}

// comment makes text safe for a one-line TOML comment.
func comment(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// tomlString is a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == unicode.ReplacementChar || r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlList is a TOML array of strings, wrapped at about 76 columns.
func tomlList(items []string) string {
	if len(items) == 0 {
		return "[]"
	}
	var b strings.Builder
	b.WriteByte('[')
	col := 12
	for i, it := range items {
		q := tomlString(it)
		if i > 0 {
			b.WriteString(",")
			if col+len(q) > 76 {
				b.WriteString("\n  ")
				col = 2
			} else {
				b.WriteString(" ")
				col++
			}
		}
		b.WriteString(q)
		col += len(q) + 1
	}
	b.WriteByte(']')
	return b.String()
}
