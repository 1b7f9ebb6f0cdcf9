package hijack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"vouch/internal/mailtext"
	"vouch/internal/submit"
)

// sendNotification mails the postmaster about a freeze.
func (g *Guard) sendNotification(f Freeze, sample []string) {
	if g.cfg.Postmaster == "" {
		return
	}
	g.mailPostmaster("freeze notification", f.Login, g.notification(f, sample, g.now()))
}

// mailPostmaster sends msg (what: for the log) to the postmaster in the
// background: the milter callback that froze the account does not wait
// for the MTA (which may itself be waiting for this milter).
func (g *Guard) mailPostmaster(what, login string, msg []byte) {
	if g.cfg.Postmaster == "" {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if _, err := submit.Send(context.Background(), g.cfg.NotifySMTP, g.heloName(), g.cfg.NotifyFrom, []string{g.cfg.Postmaster}, msg); err != nil {
			g.notifyErrors.Add(1)
			g.log.Error(what+" not sent", "login", login, "to", g.cfg.Postmaster, "smtp", g.cfg.NotifySMTP, "err", err)
			return
		}
		g.notifications.Add(1)
		g.log.Info(what+" sent", "login", login, "to", g.cfg.Postmaster)
	}()
}

// mailHeader writes the header of a mail to the postmaster.
func (g *Guard) mailHeader(b *bytes.Buffer, subject string, now time.Time, extra ...string) {
	hdr := func(name, value string) { fmt.Fprintf(b, "%s: %s\r\n", name, value) }
	hdr("From", "vouch <"+g.cfg.NotifyFrom+">")
	hdr("To", "<"+g.cfg.Postmaster+">")
	for i := 0; i+1 < len(extra); i += 2 {
		hdr(extra[i], extra[i+1])
	}
	hdr("Subject", subject)
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+messageID()+"@"+g.heloName()+">")
	// RFC 3834: no auto-replies, no vacation messages back to vouch.
	hdr("Auto-Submitted", "auto-generated")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=us-ascii")
	b.WriteString("\r\n")
}

func (g *Guard) heloName() string {
	if g.host != "" && !strings.ContainsAny(g.host, " \t\r\n") {
		return g.host
	}
	return "localhost"
}

// notification is the mail to the postmaster (RFC 5322, CRLF). Every value
// that came from the SMTP client (login, recipients) is reduced to
// printable ASCII so that it cannot add header lines.
func (g *Guard) notification(f Freeze, sample []string, now time.Time) []byte {
	login := mailtext.Printable(f.Login)
	host := mailtext.Printable(f.Host)
	if host == "" {
		host = "vouch"
	}
	var b bytes.Buffer
	replyTo := g.releaseAddress(f, now)
	if replyTo != "" {
		g.mailHeader(&b, "vouch: account "+login+" frozen", now, "Reply-To", "<"+replyTo+">")
	} else {
		g.mailHeader(&b, "vouch: account "+login+" frozen", now)
	}

	reply := replyFrozen
	if g.cfg.Trial {
		reply = replyTrial
	}
	line := func(format string, v ...any) { fmt.Fprintf(&b, format+"\r\n", v...) }
	line("vouch on %s froze the account %s: it went over its sending limit,", host, login)
	line("which often means that its password was stolen and is used for spam.")
	line("")
	line("Login:       %s", login)
	line("Frozen at:   %s", f.Since.UTC().Format(time.RFC3339))
	line("Reason:      %s", mailtext.Printable(f.Reason))
	line("Messages:    %d in the last %s (limit %d)", f.Messages, g.cfg.Window, g.cfg.Messages)
	line("Recipients:  %d in the last %s (limit %d)", f.Recipients, g.cfg.Window, g.cfg.Recipients)
	ips := "(none recorded)"
	if len(f.IPs) > 0 {
		ips = strings.Join(f.IPs, ", ")
	}
	line("Client IPs:  %s", mailtext.Printable(ips))
	if len(sample) > 0 {
		line("Recipients (sample of the latest %d):", len(sample))
		for _, r := range sample {
			line("  %s", mailtext.Printable(r))
		}
	}
	line("")
	line("Every message from this account is now refused with")
	line("  %s", reply.String())
	if g.cfg.Trial {
		line("(trial mode: a temporary refusal; the senders' MTAs keep retrying).")
	}
	line("")
	line("Check the account (change its password, look at the messages it sent),")
	line("then let it send again with:")
	line("")
	line("  vouch accounts release %s", login)
	line("")
	if replyTo != "" {
		line("or simply reply to this mail (it goes to %s),", replyTo)
		line("from %s through an authenticated session or an internal host,", g.cfg.Postmaster)
		line("within %s. vouch answers with a confirmation.", tokenLifetime(g.cfg.ReleaseTokenTTL))
		line("")
	}
	line("This is the only notification for this freeze.")
	return b.Bytes()
}

func messageID() string {
	r := make([]byte, 8)
	rand.Read(r)
	return fmt.Sprintf("vouch-hijack.%d.%s", time.Now().UnixNano(), hex.EncodeToString(r))
}
