package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// decoder lays a TOML file over a Config key by key, so that one run
// reports every unknown key and every value of the wrong type, each with
// its line, in words an admin can act on. The TOML library's own decoder
// stops at the first problem and says "TOML value has type string;
// destination has type slice".
type decoder struct {
	md    toml.MetaData
	name  string // the file, for messages
	probs []problem
}

type problem struct {
	line int
	msg  string
}

// decodeTOML parses data and decodes it into c, which holds the values
// that the file does not set.
func decodeTOML(name string, data []byte, c *Config) error {
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("config %s:%d: %s", name, pe.Position.Line, pe.Message)
		}
		return fmt.Errorf("config %s: %w", name, err)
	}
	d := &decoder{md: md, name: name}
	d.table(top, reflect.ValueOf(c).Elem(), nil)
	if len(d.probs) == 0 {
		return nil
	}
	sort.SliceStable(d.probs, func(i, j int) bool { return d.probs[i].line < d.probs[j].line })
	msgs := make([]string, len(d.probs))
	for i, p := range d.probs {
		where := name
		if p.line > 0 {
			where += ":" + strconv.Itoa(p.line)
		}
		msgs[i] = "config " + where + ": " + p.msg
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// table decodes the keys of one TOML table into the struct v.
func (d *decoder) table(keys map[string]toml.Primitive, v reflect.Value, path []string) {
	fields := tomlFields(v.Type())
	for key, prim := range keys {
		kpath := append(append([]string(nil), path...), key)
		i, ok := fields[key]
		if !ok {
			d.fail(prim, "unknown key %s%s", dotted(kpath), suggest(key, path, fields))
			continue
		}
		f := v.Field(i)
		switch {
		// The library decodes a value that is not a table into a struct
		// or map as nothing at all, without an error: check the type here.
		case f.Kind() == reflect.Struct:
			var sub map[string]toml.Primitive
			if _, ok := d.raw(prim).(map[string]any); !ok || d.md.PrimitiveDecode(prim, &sub) != nil {
				d.fail(prim, "%s: want a table: a line [%s], then its keys, %s", dotted(kpath), dotted(kpath), d.not(prim))
				continue
			}
			d.table(sub, f, kpath)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			var subs []map[string]toml.Primitive
			if _, ok := d.raw(prim).([]map[string]any); !ok || d.md.PrimitiveDecode(prim, &subs) != nil {
				d.fail(prim, "%s: want tables, each under a line [[%s]], %s", dotted(kpath), dotted(kpath), d.not(prim))
				continue
			}
			list := reflect.MakeSlice(f.Type(), len(subs), len(subs))
			for j, sub := range subs {
				d.table(sub, list.Index(j), kpath)
			}
			f.Set(list)
		case f.Kind() == reflect.Map && !isTable(d.raw(prim)):
			d.fail(prim, `%s: want a table of texts: a line [%s], then lines like name = "text", %s`, dotted(kpath), dotted(kpath), d.not(prim))
		default:
			d.value(prim, f, kpath)
		}
	}
}

// value decodes one value; on error it says what the key wants, with an
// example taken from its default where there is one.
func (d *decoder) value(prim toml.Primitive, f reflect.Value, path []string) {
	example := f.Interface()
	err := d.md.PrimitiveDecode(prim, f.Addr().Interface())
	if err == nil {
		return
	}
	key := dotted(path)
	var want string
	switch v := example.(type) {
	case time.Duration:
		var s string
		if d.md.PrimitiveDecode(prim, &s) == nil {
			d.fail(prim, "%s: %q is not a duration: write a number and a unit, like %q", key, s, shortDuration(v))
			return
		}
		want = fmt.Sprintf("a duration in quotes, like %q", shortDuration(v))
	case string:
		if v == "" {
			v = "..."
		}
		want = fmt.Sprintf("a string in quotes, like %q", v)
	case bool:
		want = "true or false"
	case int, int64:
		want = fmt.Sprintf("a whole number, like %d", v)
	case []string:
		ex := "..."
		if len(v) > 0 {
			ex = v[0]
		}
		want = fmt.Sprintf("a list like [%q]", ex)
	case map[string]string:
		want = `texts in quotes, like name = "text"`
	default:
		want = fmt.Sprintf("a %s", f.Type())
	}
	d.fail(prim, "%s: want %s, %s", key, want, d.not(prim))
}

// raw is the value as the TOML library reads it: string, int64, float64,
// bool, a time, []any, map[string]any (a table) or []map[string]any.
func (d *decoder) raw(prim toml.Primitive) any {
	var v any
	d.md.PrimitiveDecode(prim, &v)
	return v
}

func isTable(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

// not names what the file has instead, in words.
func (d *decoder) not(prim toml.Primitive) string {
	switch d.raw(prim).(type) {
	case string:
		return "not a string"
	case int64:
		return "not a number"
	case float64:
		return "not a decimal number"
	case bool:
		return "not true or false"
	case []any:
		return "not a list"
	case map[string]any:
		return "not a table"
	case []map[string]any:
		return "not a list of tables"
	}
	return "not a date or time"
}

func (d *decoder) fail(prim toml.Primitive, format string, args ...any) {
	d.probs = append(d.probs, problem{d.line(prim), fmt.Sprintf(format, args...)})
}

// probe makes the TOML library report where a value is: decoding into it
// fails, and the library's error carries the key's position.
type probe struct{}

func (probe) UnmarshalTOML(any) error { return errors.New("probe") }

// line is where prim was written; for a table that only exists through
// its sub-tables ([a.b] without [a]), where the first of those is; 0 if
// unknown.
func (d *decoder) line(prim toml.Primitive) int {
	var pe toml.ParseError
	if err := d.md.PrimitiveDecode(prim, probe{}); errors.As(err, &pe) && pe.Position.Line > 0 {
		return pe.Position.Line
	}
	var sub map[string]toml.Primitive
	if d.md.PrimitiveDecode(prim, &sub) != nil {
		return 0
	}
	first := 0
	for _, p := range sub {
		if l := d.line(p); l > 0 && (first == 0 || l < first) {
			first = l
		}
	}
	return first
}

// tomlFields maps the TOML keys of a struct type to its field indexes.
func tomlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			m[tag] = i
		}
	}
	return m
}

// suggest is " (did you mean X?)" for the key of this table closest to an
// unknown one (a typo: at most a third of the letters off), or for where
// a key of that name belongs when it is in another table.
func suggest(key string, table []string, fields map[string]int) string {
	best, bestDist := "", len(key)/3+1
	for k := range fields {
		if dist := EditDistance(key, k); dist < bestDist || dist == bestDist && k < best {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %s?)", dotted(append(append([]string(nil), table...), best)))
	}
	var elsewhere []string
	var walk func(t reflect.Type, path []string)
	walk = func(t reflect.Type, path []string) {
		for k, i := range tomlFields(t) {
			p := append(append([]string(nil), path...), k)
			if k == key {
				elsewhere = append(elsewhere, dotted(p))
			}
			if ft := t.Field(i).Type; ft.Kind() == reflect.Struct {
				walk(ft, p)
			}
		}
	}
	walk(reflect.TypeFor[Config](), nil)
	if len(elsewhere) == 0 {
		return ""
	}
	sort.Strings(elsewhere)
	return fmt.Sprintf(" (did you mean %s? a key belongs under its [table])", strings.Join(elsewhere, " or "))
}

// EditDistance is the Levenshtein distance of a and b (the edits that turn
// one into the other): the "did you mean" of unknown keys here and of
// unknown commands in cmd/vouch.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func dotted(path []string) string { return toml.Key(path).String() }

// shortDuration writes d as an admin would: "30m", not "30m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
