package daemon

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"vouch/internal/testutil"
)

// Settings whose meaning belongs to another package (the socket syntax,
// action and outcome names) are checked here, while translating, and
// reported by Load in the config's format.
func TestBadSettings(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string // each must appear in the error
	}{
		{"bad socket", "listen = \"tcp:8891\"\n", []string{`vouch.toml: listen: socket "tcp:8891"`}},
		{"bad mode", "[screen]\nmode = \"strict\"\n", []string{`screen.mode: "strict"`}},
		{"bad action", "[screen.ptr]\nno_record = \"bounce\"\n", []string{`screen.ptr.no_record: unknown action "bounce"`}},
		{"outcome of another check", "[screen.mail]\nno_record = \"reject\"\n", []string{`mail has no outcome "no_record"`}},
		{"temp_error may not reject", "[screen.helo]\ntemp_error = \"reject\"\n", []string{"screen.helo.temp_error: reject is not allowed"}},
		{"reply for unknown outcome", "[screen.helo.replies]\nnot_exists = \"x\"\n", []string{"screen.helo.replies.not_exists: no such outcome"}},
		{"bad verify action", "[verify]\ndkim_fail = \"bounce\"\n", []string{"vouch.toml: verify.dkim_fail"}},
		{"bad hijack section", "[hijack]\nenabled = true\naction = \"bounce\"\nmessages = 0\n", []string{
			`vouch.toml: hijack.action: unknown action "bounce"`, "vouch.toml: hijack.messages"}},
		{"with file problems", "log_level = \"loud\"\n[screen]\nmode = \"strict\"\n", []string{"vouch.toml: log_level", "vouch.toml: screen.mode"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(testutil.WriteTemp(t, "vouch.toml", tc.content))
			testutil.ErrorMentions(t, err, tc.want...)
		})
	}
}

func TestScreenConfig(t *testing.T) {
	cfg, err := Load(testutil.WriteTemp(t, "vouch.toml", `
[screen.ptr]
no_match = "reject"
[screen.ptr.replies]
no_match = "Fix your reverse DNS, %ip%"
`))
	if err != nil {
		t.Fatal(err)
	}
	pc, errs := ScreenConfig(cfg)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if r := pc.Checks["ptr"].Rules["no_match"]; r.Text != "Fix your reverse DNS, %ip%" || r.Action.String() != "reject" {
		t.Fatalf("ptr no_match: %+v", r)
	}
	if pc.Mode != "trial" {
		t.Fatalf("default screen mode %q, want trial", pc.Mode)
	}
	// The top-level mode reaches the screen, verification and hijack.
	cfg, err = Load(testutil.WriteTemp(t, "vouch.toml", "mode = \"enforce\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pc, _ := ScreenConfig(cfg); pc.Mode != "enforce" {
		t.Fatalf("screen mode %q with mode = enforce", pc.Mode)
	}
	if HijackConfig(cfg).Trial {
		t.Fatal("hijack in trial with mode = enforce")
	}
}

// TestCheckReportsEverything: serve -check (Check) reports two missing keys, a bad key table line, a signing table naming
// a key that is not there and the config's own problems, all in one run.
func TestCheckReportsEverything(t *testing.T) {
	dir := t.TempDir()
	kt := filepath.Join(dir, "KeyTable")
	st := filepath.Join(dir, "SigningTable")
	os.WriteFile(kt, []byte("a a.test:s:"+dir+"/a.private\nb b.test:s:"+dir+"/b.private\nbroken nocolons\n"), 0o644)
	os.WriteFile(st, []byte("a.test a\nb.test b\nc.test nope\n"), 0o644)
	path := testutil.WriteTemp(t, "vouch.toml", `
[signing]
key_table = "`+kt+`"
signing_table = "`+st+`"
[[signing.key]]
domain = "c.test"
selector = "s"
private_key = "`+dir+`/c.private"
`)
	// A problem of the file itself is reported along with the keys'.
	os.WriteFile(path, append([]byte("log_level = \"loud\"\n"), must(os.ReadFile(path))...), 0o644)
	_, err := Check(path, io.Discard)
	testutil.ErrorMentions(t, err, "vouch.toml: log_level", kt+`:1: key table entry "a"`, kt+`:2: key table entry "b"`, kt+`:3: key table entry "broken"`,
		st+`:3: signing table entry "c.test" names key "nope"`, "signing.key[0]: key "+dir+"/c.private")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
