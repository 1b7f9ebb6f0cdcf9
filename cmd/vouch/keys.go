package main

import (
	"context"
	"crypto"
	"crypto/rsa"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"vouch/internal/config"
	"vouch/internal/daemon"
	"vouch/internal/domaincheck"
	"vouch/internal/resolver"
	"vouch/signer"
)

func keysCommand(args []string) int { return runKeys(args, os.Stdout, os.Stderr, time.Now()) }

// oldRecordGrace is how long the old selector's record stays published
// after a switch: mail signed just before it may sit in queues and be
// verified (or re-verified, by forwarders and ARC sealers) for days.
const oldRecordGrace = 7 * 24 * time.Hour

// keyReport is one signing key in `vouch keys`.
type keyReport struct {
	Domain    string      `json:"domain"`
	Selector  string      `json:"selector"`
	Source    string      `json:"source"`
	File      string      `json:"file,omitempty"`
	Algorithm string      `json:"algorithm"`
	Bits      int         `json:"bits,omitempty"`
	AgeDays   *int        `json:"age_days,omitempty"` // of the key file (mtime)
	Published string      `json:"published"`          // the record now, as testkey sees it
	Signing   bool        `json:"signing"`            // this key signs now
	Next      *nextReport `json:"next,omitempty"`
	Warnings  []string    `json:"warnings,omitempty"`
	Actions   []string    `json:"actions,omitempty"` // what to publish or remove now
}

// nextReport is the successor of a [[signing.key]].
type nextReport struct {
	Selector       string     `json:"selector"`
	File           string     `json:"file"`
	Algorithm      string     `json:"algorithm"`
	Bits           int        `json:"bits,omitempty"`
	Published      string     `json:"published"`
	State          string     `json:"state"` // not published, published, switched
	PublishedSince *time.Time `json:"published_since,omitempty"`
	SwitchAt       *time.Time `json:"switch_at,omitempty"`
	SwitchedAt     *time.Time `json:"switched_at,omitempty"`
}

// runKeys is `vouch keys`: every signing key with its age, size and DNS
// record, the rotation to its next key, and what the admin has to publish
// or remove now. now is the clock (tests fix it).
func runKeys(args []string, stdout, stderr io.Writer, now time.Time) int {
	fs := newFlags("keys", help{
		usage: "vouch keys [-config FILE] [-json] [-d DOMAIN,...]",
		about: "Lists every signing key: selector, algorithm, size, age of the key file,\n" +
			"whether its DNS record is published and matches, the rotation to its next\n" +
			"key (next_selector: not published / published since T, switch at T /\n" +
			"switched at T, from rotation.state_file) and exactly which record to\n" +
			"publish or remove now. Warns about keys older than rotation.max_key_age\n" +
			"and RSA keys under 2048 bits. Automatic switching is for [[signing.key]]\n" +
			"entries; KeyTable keys are listed, and rotated by editing the KeyTable.\n" +
			"See README \"Rotating keys\".",
		exits:   "0 listed\n1 the configuration, a key or the state file cannot be read",
		example: "vouch keys -config /etc/vouch/vouch.toml",
	}, stdout, stderr)
	configPath := fs.String("config", "", "config file (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	senders := fs.String("d", "", "comma-separated domains (or addresses) whose signing keys to list too, looked up as for a message\nfrom them: for keys loaded per message (% in a KeyTable path, keys in LDAP)")
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
	cfg, err := daemon.Load(*configPath)
	if err != nil {
		return fail("keys", err, 1)
	}
	res, err := configResolver(cfg)
	if err != nil {
		return fail("keys", err, 1)
	}
	sg, _, err := signer.New(daemon.SignerConfig(cfg))
	if err != nil {
		return fail("keys", err, 1)
	}
	defer sg.Close()
	var status []signer.RotationStatus
	if rot := sg.Rotation(); rot != nil {
		if status, err = rot.Status(); err != nil {
			return fail("keys", err, 1)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	keys, err := keysToReport(sg, *senders)
	if err != nil {
		return fail("keys", err, 1)
	}
	var reps []keyReport
	for _, k := range keys {
		reps = append(reps, reportKey(ctx, res, cfg, k, status, now))
	}
	if *asJSON {
		writeJSON(stdout, struct {
			Keys  []keyReport `json:"keys"`
			Notes []string    `json:"notes,omitempty"`
		}{reps, keysNotes(cfg)})
		return 0
	}
	for i, r := range reps {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printKeyReport(stdout, r)
	}
	if len(reps) == 0 {
		fmt.Fprintln(stdout, "no signing keys configured")
	}
	for _, n := range keysNotes(cfg) {
		fmt.Fprintf(stdout, "\nnote: %s\n", n)
	}
	return 0
}

// keysToReport is every key loaded at start, then the keys that sign for
// each of senders (domains or addresses) that are not among them.
func keysToReport(sg *signer.Signer, senders string) ([]*signer.Key, error) {
	keys := sg.Keys()
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k.Domain+"/"+k.Selector] = true
	}
	for _, from := range strings.Split(senders, ",") {
		if from = strings.TrimSpace(from); from == "" {
			continue
		}
		local, domain, ok := strings.Cut(from, "@")
		if !ok {
			local, domain = "postmaster", from
		}
		reqs, err := sg.Lookup(local, domain)
		if err != nil {
			return nil, fmt.Errorf("-d %s: %w", from, err)
		}
		for _, r := range reqs {
			if id := r.Key.Domain + "/" + r.Key.Selector; !seen[id] {
				seen[id] = true
				keys = append(keys, r.Key)
			}
		}
	}
	return keys, nil
}

func keysNotes(cfg *config.Config) []string {
	var notes []string
	if cfg.Signing.KeyTable != "" {
		notes = append(notes, "automatic switching is for [[signing.key]] entries: rotate a KeyTable key by adding the new key to the KeyTable, publishing its record, waiting two days and then pointing the SigningTable at it")
	}
	if strings.Contains(cfg.Signing.KeyTable, "%") || strings.HasPrefix(cfg.Signing.KeyTable, "ldap") {
		notes = append(notes, "keys loaded per message (a % in the key path, or keys in LDAP) are listed only for the domains given with -d")
	}
	return notes
}

// reportKey looks a key (and its successor) up and says what to do.
func reportKey(ctx context.Context, res *resolver.Resolver, cfg *config.Config, k *signer.Key, status []signer.RotationStatus, now time.Time) keyReport {
	r := keyReport{Domain: k.Domain, Selector: k.Selector, Source: k.Source, File: k.Path, Signing: true}
	r.Algorithm, r.Bits = keyShape(k.Signer)
	if k.Path != "" {
		if fi, err := os.Stat(k.Path); err == nil {
			days := int(now.Sub(fi.ModTime()) / (24 * time.Hour))
			r.AgeDays = &days
			if maxAge := cfg.Rotation.MaxKeyAge; maxAge > 0 && now.Sub(fi.ModTime()) > maxAge {
				r.Warnings = append(r.Warnings, fmt.Sprintf("the key file is %d days old, more than rotation.max_key_age (%d days): rotate it", days, int(maxAge/(24*time.Hour))))
			}
		}
	}
	if r.Algorithm == "rsa" && r.Bits < 2048 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("RSA key of %d bits: 2048 are recommended; rotate to a 2048-bit RSA key", r.Bits))
	}
	cur := domaincheck.CheckKey(ctx, res, k.Domain, k.Selector, k.Signer)
	r.Published = publishedState(cur)
	var st *signer.RotationStatus
	for i := range status {
		if status[i].Current == k {
			st = &status[i]
		}
	}
	if !cur.Matches && k.Domain != "%" && (st == nil || st.SwitchedAt.IsZero()) {
		r.Actions = append(r.Actions, "publish this record (mail signed with this key fails verification until then): "+cur.Publish)
	}
	if st == nil {
		if len(r.Warnings) > 0 && strings.HasPrefix(k.Source, "signing.key[") {
			r.Actions = append(r.Actions, fmt.Sprintf("make a next key: vouch genkey -next -d %s -D %s, then add the two lines it prints to this [[signing.key]]", k.Domain, keyDir(k.Path)))
		}
		return r
	}
	next := domaincheck.CheckKey(ctx, res, st.Next.Domain, st.Next.Selector, st.Next.Signer)
	n := &nextReport{Selector: st.Next.Selector, File: st.Next.Path, Published: publishedState(next)}
	n.Algorithm, n.Bits = keyShape(st.Next.Signer)
	r.Next = n
	oldName := k.Selector + "._domainkey." + k.Domain
	switch {
	case !st.SwitchedAt.IsZero():
		r.Signing = false
		n.State, n.SwitchedAt = "switched", utcPtr(st.SwitchedAt)
		if !next.Matches {
			r.Warnings = append(r.Warnings, "vouch signs with the next key but its record does not verify it: signatures fail")
			r.Actions = append(r.Actions, "publish the next key's record again now: "+next.Publish)
		}
		until := st.SwitchedAt.Add(oldRecordGrace)
		if now.Before(until) {
			r.Actions = append(r.Actions, fmt.Sprintf("keep the old selector's record %s published for at least 7 days after the switch (until %s), then publish it empty (%s. IN TXT \"v=DKIM1; p=\") or remove it", oldName, stamp(until), oldName))
		} else {
			r.Actions = append(r.Actions, fmt.Sprintf("the old selector's record %s may go now: publish it empty (%s. IN TXT \"v=DKIM1; p=\") or remove it", oldName, oldName))
		}
		r.Actions = append(r.Actions, fmt.Sprintf("in the config, make the next key the current one (selector = %q, private_key = %q, no next_ lines) and reload; the old key file can then be deleted", st.Next.Selector, st.Next.Path))
	case !st.PublishedSince.IsZero() && next.Matches:
		n.State, n.PublishedSince, n.SwitchAt = "published", utcPtr(st.PublishedSince), utcPtr(st.SwitchAt)
		if cfg.Rotation.AutoSwitch {
			r.Actions = append(r.Actions, fmt.Sprintf("nothing to publish: vouch switches to %s at %s; keep %s published", st.Next.Selector, stamp(st.SwitchAt), oldName))
		} else {
			r.Actions = append(r.Actions, fmt.Sprintf("auto_switch is off: from %s, make the next key the current one in the config and reload", stamp(st.SwitchAt)))
		}
	default:
		n.State = "not published"
		if next.Matches {
			n.State = "published"
			r.Actions = append(r.Actions, fmt.Sprintf("nothing to publish: the daemon has not seen the record yet (it looks every %s); the switch comes %s after it does", cfg.Rotation.CheckInterval, cfg.Rotation.PublishDelay))
		} else {
			r.Actions = append(r.Actions, "publish the next key's record: "+next.Publish)
		}
	}
	return r
}

// publishedState is one line for a selector's record.
func publishedState(kc domaincheck.KeyCheck) string {
	switch {
	case kc.Matches:
		return "yes, matches the key"
	case kc.Result == domaincheck.KeyMissing:
		return "no"
	case kc.Result == domaincheck.KeyTempFail:
		return "unknown: " + kc.Message
	case kc.Result == domaincheck.KeyOK:
		return kc.Message // KeyTable "%" rows
	}
	return "wrong: " + kc.Message
}

func keyShape(k crypto.Signer) (string, int) {
	if pub, ok := k.Public().(*rsa.PublicKey); ok {
		return "rsa", pub.N.BitLen()
	}
	return signer.Algorithm(k), 0
}

func keyDir(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	return "."
}

func utcPtr(t time.Time) *time.Time {
	u := t.UTC()
	return &u
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func printKeyReport(w io.Writer, r keyReport) {
	fmt.Fprintf(w, "%s selector %s (%s)\n", r.Domain, r.Selector, r.Source)
	shape := r.Algorithm
	if r.Bits > 0 {
		shape = fmt.Sprintf("%s %d bits", r.Algorithm, r.Bits)
	}
	if r.AgeDays != nil {
		shape += fmt.Sprintf(", key file %d days old", *r.AgeDays)
	}
	fmt.Fprintf(w, "  key:       %s\n", shape)
	if r.File != "" {
		fmt.Fprintf(w, "  file:      %s\n", r.File)
	}
	fmt.Fprintf(w, "  published: %s\n", r.Published)
	fmt.Fprintf(w, "  signing:   %v\n", r.Signing)
	if n := r.Next; n != nil {
		shape := n.Algorithm
		if n.Bits > 0 {
			shape = fmt.Sprintf("%s %d bits", n.Algorithm, n.Bits)
		}
		state := n.State
		switch {
		case n.SwitchedAt != nil:
			state = "switched at " + stamp(*n.SwitchedAt)
		case n.PublishedSince != nil:
			state = fmt.Sprintf("published since %s, switch at %s", stamp(*n.PublishedSince), stamp(*n.SwitchAt))
		}
		fmt.Fprintf(w, "  next:      %s (%s, %s): %s\n", n.Selector, shape, n.File, state)
		fmt.Fprintf(w, "  next record published: %s\n", n.Published)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "  warning:   %s\n", warn)
	}
	for _, a := range r.Actions {
		fmt.Fprintf(w, "  do now:    %s\n", a)
	}
}
