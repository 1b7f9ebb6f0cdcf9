package config

import (
	"bytes"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzLoadConfig: any file either loads into a configuration that, when
// written out as TOML and read again, is the same configuration, or is
// refused with an error each of whose lines names the file and a line or
// a key. Nothing panics.
func FuzzLoadConfig(f *testing.F) {
	f.Add(defaultTOML)
	for _, s := range []string{
		"listen = \"unix:/run/vouch/vouch.sock\"\n[dns]\nservers = [\"192.0.2.53:53\"]\n[screen]\nmode = \"enforce\"\n[screen.ptr]\nno_match = \"reject\"\n[screen.ptr.replies]\nno_match = \"Fix your reverse DNS, %ip%\"\n",
		"lisen = 1\n[signing]\ninternal_hosts = \"127.0.0.1\"\nkey_tabel = \"/x\"\n[dns]\ntimeout = \"5 seconds\"\nattempts = \"3\"\n",
		"[[signing.key]]\ndomain = \"example.com\"\nselector = \"s\"\nprivate_key = \"/k\"\n[[signing.key]]\ndomain = 1\n",
		"screen = 1\n", "[screen.ptr]\nreplies = 1\n", "[dns]\ntimeout = 5\n", "a.b.c = 1\n", "[whitelist.sync]\nat = \"25:00\"\n",
		"log_level = \n", "[hijack]\nwindow = true\n", "signing.oversign = []\n", "[limits]\nmax_sessions = 1e3\n",
		"[[signing.key]]\ndomain = \"a\"\nselector = \"s\"\nprivate_key = \"/k\"\nnext_selector = \"s\"\n",
	} {
		f.Add([]byte(s))
	}
	keys := schemaKeys()
	lineRE := regexp.MustCompile(`^config fuzz\.toml(:[1-9][0-9]*)?: (.*)$`)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse("fuzz.toml", data, Default())
		if err == nil {
			c.Path = "fuzz.toml"
			err = c.Validate()
		}
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				m := lineRE.FindStringSubmatch(line)
				if m == nil {
					t.Fatalf("error line %q does not name the file", line)
				}
				if m[1] == "" && !keys[firstKey(m[2])] {
					t.Fatalf("error line %q names neither a line nor a key", line)
				}
			}
			return
		}
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(c); err != nil {
			t.Fatalf("encode: %v", err)
		}
		again, err := parse("again.toml", buf.Bytes(), &Config{})
		if err != nil {
			t.Fatalf("re-load: %v\n%s", err, buf.String())
		}
		again.Path = c.Path
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("re-loaded config differs:\n%+v\n%+v\n%s", c, again, buf.String())
		}
	})
}

// firstKey is the key a message starts with: "dns.timeout: ..." or
// "signing.ldap_bind_password and ...";
// "signing.key[0]: ..." names signing.key.
func firstKey(msg string) string {
	if i := strings.IndexAny(msg, ": "); i >= 0 {
		msg = msg[:i]
	}
	return indexRE.ReplaceAllString(msg, "")
}

var indexRE = regexp.MustCompile(`\[[0-9]+\]`)

// schemaKeys lists every dotted key and table of the schema.
func schemaKeys() map[string]bool {
	m := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for k, i := range tomlFields(t) {
			m[prefix+k] = true
			ft := t.Field(i).Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft, prefix+k+".")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return m
}
