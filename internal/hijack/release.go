package hijack

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"vouch/internal/mailtext"
)

// Release by reply (MDaemon: "the administrator can re-enable the account
// by replying to the notification"). The freeze notification carries a
// Reply-To address release_address+TOKEN. The token travels in the
// address, not in the subject: mail clients copy Reply-To verbatim into
// the reply's To and the envelope recipient, while they prefix, translate
// ("AW:", "SV:"), fold or re-encode subjects, and the postmaster may edit
// them. An address also reaches the milter at RCPT, without parsing the
// message.
//
// TOKEN is base32 (case-insensitive: some MTAs and clients change the case
// of local parts) of freeze id (8 bytes) | expiry (uint32 unix seconds) |
// HMAC-SHA256(key, login, freeze id, expiry) truncated to 12 bytes. 39
// characters, so release_address+TOKEN stays within the 64-octet local
// part limit of RFC 5321 §4.5.3.1.1. The freeze id is random per freeze
// and a release deletes the freeze: a token works once, and a token of an
// earlier freeze of the same login does not release a later one.

const (
	freezeIDLen  = 8
	releaseMAC   = 12
	tokenLen     = freezeIDLen + 4 + releaseMAC
	releaseKeyLn = 32
)

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// tokenChars is the length of an encoded token.
var tokenChars = tokenEncoding.EncodedLen(tokenLen)

// Why a reply did not release an account (tests compare with errors.Is).
var (
	errUntrusted     = errors.New("reply from an untrusted client (neither SMTP-authenticated nor an internal host)")
	errNotPostmaster = errors.New("reply not from the postmaster address")
	errBadToken      = errors.New("release token forged or damaged")
	errExpired       = errors.New("release token expired")
	errNoFreeze      = errors.New("no such freeze (released already, or the token was used)")
)

// newFreezeID is the random id of one freeze.
func newFreezeID() string {
	b := make([]byte, freezeIDLen)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func releaseMACOf(key []byte, login string, id []byte, expiry uint32) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "vouch-release\x00%s\x00%x\x00%d", login, id, expiry)
	return m.Sum(nil)[:releaseMAC]
}

// releaseToken is the token for freeze f, valid until expiry.
func releaseToken(key []byte, f Freeze, expiry time.Time) (string, error) {
	id, err := hex.DecodeString(f.ID)
	if err != nil || len(id) != freezeIDLen {
		return "", fmt.Errorf("freeze of %q has no usable id", f.Login)
	}
	buf := make([]byte, 0, tokenLen)
	buf = append(buf, id...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(expiry.Unix()))
	buf = append(buf, releaseMACOf(key, f.Login, id, uint32(expiry.Unix()))...)
	return strings.ToLower(tokenEncoding.EncodeToString(buf)), nil
}

// parseToken splits a token into freeze id (hex), expiry and MAC.
func parseToken(token string) (id string, expiry time.Time, mac []byte, err error) {
	b, err := tokenEncoding.DecodeString(strings.ToUpper(token))
	if err != nil || len(b) != tokenLen {
		return "", time.Time{}, nil, errBadToken
	}
	exp := binary.BigEndian.Uint32(b[freezeIDLen:])
	return hex.EncodeToString(b[:freezeIDLen]), time.Unix(int64(exp), 0), b[freezeIDLen+4:], nil
}

// verifyToken checks token against the current freezes at now and returns
// the freeze it releases.
func (g *Guard) verifyToken(ctx context.Context, token string, now time.Time) (Freeze, error) {
	id, expiry, mac, err := parseToken(token)
	if err != nil {
		return Freeze{}, err
	}
	l, err := g.List(ctx)
	if err != nil {
		return Freeze{}, err
	}
	for _, f := range l.Frozen {
		if f.ID != id {
			continue
		}
		raw, _ := hex.DecodeString(id)
		if !hmac.Equal(mac, releaseMACOf(g.releaseKey, f.Login, raw, uint32(expiry.Unix()))) {
			return Freeze{}, errBadToken
		}
		if !now.Before(expiry) {
			return f, errExpired
		}
		return f, nil
	}
	return Freeze{}, errNoFreeze
}

// releaseAddress is the Reply-To of the notification of f, or "" when
// release by reply is off (or f predates freeze ids).
func (g *Guard) releaseAddress(f Freeze, now time.Time) string {
	if g.releaseKey == nil {
		return ""
	}
	token, err := releaseToken(g.releaseKey, f, now.Add(g.cfg.ReleaseTokenTTL))
	if err != nil {
		return ""
	}
	local, domain, _ := strings.Cut(g.cfg.ReleaseAddress, "@")
	return local + "+" + token + "@" + domain
}

// releaseTokenOf returns the token of a recipient address release_address
// +TOKEN (angle brackets allowed), or "" for any other address.
func (g *Guard) releaseTokenOf(rcpt string) string {
	if g.releaseKey == nil {
		return ""
	}
	rcpt = strings.Trim(rcpt, "<> ")
	local, domain, ok := strings.Cut(rcpt, "@")
	wantLocal, wantDomain, _ := strings.Cut(g.cfg.ReleaseAddress, "@")
	if !ok || !strings.EqualFold(domain, wantDomain) {
		return ""
	}
	base, token, ok := strings.Cut(local, "+")
	if !ok || !strings.EqualFold(base, wantLocal) {
		return ""
	}
	return token
}

// ReleaseReply is called at the end of every message. If a recipient is a
// release address, the message is a reply to a freeze notification: the
// account is released when the token is good, the sender is the
// postmaster and the client is trusted (trustedBy names how: SMTP AUTH
// login or internal host; "" for an outside client, never enough, since
// anyone can forge a From). It reports whether the message was such a
// reply; the milter then discards it (it is addressed to vouch, not to a
// mailbox), whether the release worked or not.
func (g *Guard) ReleaseReply(ctx context.Context, rcpts []string, sender string, client netip.Addr, trustedBy string) bool {
	if g == nil {
		return false
	}
	token := ""
	for _, r := range rcpts {
		if token = g.releaseTokenOf(r); token != "" {
			break
		}
	}
	if token == "" {
		return false
	}
	sender = strings.Trim(sender, "<> ")
	login, err := g.releaseByToken(ctx, token, sender, trustedBy)
	if err != nil {
		g.log.Warn("release reply refused", "login", login, "sender", mailtext.Printable(sender), "ip", client.String(),
			"trusted_by", trustedBy, "err", err)
		return true
	}
	g.mailPostmaster("release confirmation", login, g.confirmation(login, sender, client, trustedBy, g.now()))
	return true
}

// releaseByToken releases the login of token's freeze; it returns the
// login as far as it is known.
func (g *Guard) releaseByToken(ctx context.Context, token, sender, trustedBy string) (string, error) {
	if trustedBy == "" {
		return "", errUntrusted
	}
	if !g.isPostmaster(sender) {
		return "", errNotPostmaster
	}
	f, err := g.verifyToken(ctx, token, g.now())
	if err != nil {
		return f.Login, err
	}
	_, err = g.Release(ctx, f.Login, "reply to the freeze notification from "+sender+" ("+trustedBy+")")
	return f.Login, err
}

// isPostmaster compares an envelope sender with the postmaster address;
// a bare "postmaster" matches the local part postmaster of any domain.
func (g *Guard) isPostmaster(sender string) bool {
	pm := g.cfg.Postmaster
	if pm == "" || sender == "" {
		return false
	}
	if !strings.Contains(pm, "@") {
		local, _, _ := strings.Cut(sender, "@")
		return strings.EqualFold(local, pm)
	}
	return strings.EqualFold(sender, pm)
}

// confirmation is the short mail that answers a release reply.
func (g *Guard) confirmation(login, sender string, client netip.Addr, trustedBy string, now time.Time) []byte {
	var b bytes.Buffer
	g.mailHeader(&b, "vouch: account "+mailtext.Printable(login)+" released", now)
	fmt.Fprintf(&b, "The account %s was released by a reply to its freeze notification\r\n", mailtext.Printable(login))
	fmt.Fprintf(&b, "from %s (%s, client %s) at %s.\r\n", mailtext.Printable(sender), mailtext.Printable(trustedBy),
		client, now.UTC().Format(time.RFC3339))
	b.WriteString("It can send again; its counters start from zero.\r\n")
	return b.Bytes()
}

// loadReleaseKey reads the release key from path, or makes one (random,
// mode 0600) when the file does not exist. Instances that share Redis must
// share the key too (copy the file), so that a reply passing any of them
// is recognised.
func loadReleaseKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, err
		}
		key := make([]byte, releaseKeyLn)
		rand.Read(key)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return loadReleaseKey(path) // another instance made it first
		}
		if err != nil {
			return nil, err
		}
		_, err = f.WriteString(hex.EncodeToString(key) + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o: readable by others (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) < releaseKeyLn {
		return nil, fmt.Errorf("%s: not %d hex-encoded bytes (remove it to make a new one)", path, releaseKeyLn)
	}
	return key, nil
}

// tokenLifetime formats the token lifetime for the notification text.
func tokenLifetime(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	return d.String()
}
