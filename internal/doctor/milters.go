package doctor

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vouch/internal/sockaddr"
)

// checkListening: something answers on vouch's socket now.
func (d *doctor) checkListening() {
	network, addr := dialTarget(d.addr)
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		d.add("socket", "vouch listens", Fail, fmt.Sprintf("nothing answers on %s (listen = %q): %v.", addr, d.cfg.Listen, err),
			"start vouch (systemctl start vouch, or vouch serve under your supervisor) and look at its log")
		return
	}
	c.Close()
	d.listening = true
	d.add("socket", "vouch listens", OK, fmt.Sprintf("vouch answers on %s.", addr), "")
}

// dialTarget is where a client connects to reach a listening address
// (a wildcard address is reached through loopback).
func dialTarget(a sockaddr.Address) (network, addr string) {
	if a.Network == "unix" {
		return "unix", a.Addr
	}
	host, port, _ := net.SplitHostPort(a.Addr)
	switch host {
	case "0.0.0.0", "":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return a.Network, net.JoinHostPort(host, port)
}

// milterEntries splits a smtpd_milters value into its sockets; the
// "{ inet:host:port, connect_timeout=10s }" form gives its first element.
func milterEntries(v string) []string {
	var out []string
	for v = strings.TrimLeft(v, ", \t\n"); v != ""; v = strings.TrimLeft(v, ", \t\n") {
		if strings.HasPrefix(v, "{") {
			inner, rest, _ := strings.Cut(v[1:], "}") // an unclosed brace takes the rest
			first, _, _ := strings.Cut(inner, ",")
			out = append(out, strings.TrimSpace(first))
			v = rest
			continue
		}
		end := strings.IndexAny(v, ", \t\n")
		if end < 0 {
			end = len(v)
		}
		out = append(out, v[:end])
		v = v[end:]
	}
	return out
}

// reaches reports whether the Postfix milter entry, used by a service
// with that chroot setting, leads to vouch's socket, and where it leads.
// Postfix resolves unix paths after chdir to queue_directory and, for a
// chrooted service, after chroot to it.
func (d *doctor) reaches(entry string, chroot bool, queueDir string) (bool, string) {
	kind, rest, _ := strings.Cut(entry, ":")
	switch strings.ToLower(kind) {
	case "unix", "local":
		p := rest
		switch {
		case !filepath.IsAbs(p):
			p = filepath.Join(queueDir, p)
		case chroot:
			p = filepath.Join(queueDir, p)
		}
		p = filepath.Clean(p)
		return d.addr.Network == "unix" && p == filepath.Clean(d.addr.Addr), "unix:" + p
	case "inet", "inet6":
		a, err := sockaddr.Parse(entry) // takes Postfix's inet:host:port
		return err == nil && sameAddress(a, d.addr), entry
	}
	return false, entry
}

// sameHost: whether a client connecting to host reaches a listener bound
// to listen (localhost, 127.0.0.1 and ::1 are taken as one).
func sameHost(host, listen string) bool {
	if listen == "0.0.0.0" || listen == "::" || strings.EqualFold(host, listen) {
		return true
	}
	return isLoopback(host) && isLoopback(listen)
}

func isLoopback(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// expected is the milter entry a service should name to reach vouch.
func (d *doctor) expected(chroot bool, queueDir string) string {
	if d.addr.Network != "unix" {
		_, addr := dialTarget(d.addr)
		return "inet:" + addr
	}
	if chroot {
		if rel, err := filepath.Rel(queueDir, d.addr.Addr); err == nil && !strings.HasPrefix(rel, "..") {
			return "unix:/" + rel
		}
		return "" // a chrooted service cannot reach a socket outside queue_directory
	}
	return "unix:" + d.addr.Addr
}

// checkMilters: every smtpd service and cleanup (non_smtpd_milters) hand
// mail to vouch, as each sees the socket path.
func (d *doctor) checkMilters(pf *Postfix) {
	queue := pf.Main["queue_directory"]
	calls := func(s *Service, param string) (bool, string) {
		if strings.Contains(pf.Get(s, "receive_override_options"), "no_milters") {
			return false, "receive_override_options=no_milters"
		}
		var seen []string
		for _, e := range milterEntries(pf.Get(s, param)) {
			ok, where := d.reaches(e, s != nil && s.Chroot, queue)
			if ok {
				return true, where
			}
			seen = append(seen, where)
		}
		if len(seen) == 0 {
			return false, param + " is empty"
		}
		return false, param + " leads to " + strings.Join(seen, ", ")
	}
	fix := func(s *Service, param string) string {
		chroot := s != nil && s.Chroot
		want := d.expected(chroot, queue)
		if want == "" {
			return fmt.Sprintf("%s runs chrooted in %s and cannot reach %s: move vouch's socket under it (listen = \"unix:%s/vouch/vouch.sock\", then %s = unix:/vouch/vouch.sock) or use inet:", s.ID(), queue, d.addr.Addr, queue, param)
		}
		if s != nil {
			if _, over := s.Overrides[param]; over {
				return fmt.Sprintf("in master.cf, %s: -o %s=%s (or drop the override)", s.ID(), param, want)
			}
		}
		return fmt.Sprintf("main.cf: %s = %s", param, want)
	}
	where := func(s *Service) string {
		if s.Chroot {
			return "chrooted in " + queue
		}
		return "not chrooted"
	}

	any := false
	for i := range pf.Services {
		s := &pf.Services[i]
		if s.Command != "smtpd" || (s.Type != "inet" && s.Type != "pass") {
			continue
		}
		ok, how := calls(s, "smtpd_milters")
		title := "smtpd_milters of " + s.ID()
		switch {
		case ok:
			any = true
			d.add("milters", title, OK, fmt.Sprintf("%s (%s) reaches vouch at %s.", s.ID(), where(s), how), "")
		case loopbackService(s):
			// A content filter's return port (amavis 10025, Zimbra's
			// 10030...): mail there has been through another smtpd.
			d.add("milters", title, OK, fmt.Sprintf("%s listens on loopback only (a content filter's return path) and does not call vouch (%s); mail was handed to vouch where it entered.", s.ID(), how), "")
		default:
			d.add("milters", title, Fail, fmt.Sprintf("mail received by %s (%s) bypasses vouch: %s; it leaves unsigned and unscreened.", s.ID(), where(s), how), fix(s, "smtpd_milters"))
		}
	}
	if !any && len(publicSMTPD(pf)) == 0 {
		d.add("milters", "smtpd_milters", Fail, "master.cf has no smtpd service that hands mail to vouch.", fix(nil, "smtpd_milters"))
	}

	cleanup := pf.Service(orDefault(pf.Main["cleanup_service_name"], "cleanup"), "unix")
	if cleanup == nil {
		cleanup = &Service{Name: "cleanup", Type: "unix", Overrides: map[string]string{}}
	}
	if ok, how := calls(cleanup, "non_smtpd_milters"); ok {
		d.add("milters", "non_smtpd_milters (cleanup)", OK, fmt.Sprintf("mail from sendmail/pickup reaches vouch through %s (%s) at %s.", cleanup.ID(), where(cleanup), how), "")
	} else {
		d.add("milters", "non_smtpd_milters (cleanup)", Fail, fmt.Sprintf("mail from sendmail(1) (cron, scripts, web mail) goes out unsigned: %s, as %s (%s) sees it.", how, cleanup.ID(), where(cleanup)), fix(cleanup, "non_smtpd_milters"))
	}
	d.checkSocketAccess(pf)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// loopbackService: an inet service bound to a loopback address only
// ("127.0.0.1:10025").
func loopbackService(s *Service) bool {
	i := strings.LastIndex(s.Name, ":")
	return s.Type == "inet" && i > 0 && isLoopback(strings.Trim(s.Name[:i], "[]"))
}

// checkSocketAccess: Postfix's processes (mail_owner, its primary group:
// Postfix sets no supplementary groups) may enter the directories and
// write to vouch's unix socket.
func (d *doctor) checkSocketAccess(pf *Postfix) {
	if d.addr.Network != "unix" {
		return
	}
	owner := orDefault(pf.Main["mail_owner"], "postfix")
	u, err := user.Lookup(owner)
	if err != nil {
		d.add("socket", "Postfix may connect", Warn, fmt.Sprintf("mail_owner %s: %v; cannot check the socket's permissions.", owner, err), "")
		return
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if why := access(d.addr.Addr, uid, gid); why != "" {
		d.add("socket", "Postfix may connect", Fail, fmt.Sprintf("user %s cannot connect to %s: %s.", owner, d.addr.Addr, why),
			`socket_group = "postfix" and socket_mode = "0660" in vouch's config (vouch in group postfix: adduser vouch postfix), and the directory: install -d -o vouch -g postfix -m 0750 `+filepath.Dir(d.addr.Addr))
		return
	}
	d.add("socket", "Postfix may connect", OK, fmt.Sprintf("user %s may enter %s and write to the socket.", owner, filepath.Dir(d.addr.Addr)), "")
}

// access says why uid/gid cannot connect to the unix socket at p ("" if
// it can): search permission on every directory, write on the socket.
func access(p string, uid, gid int) string {
	allowed := func(fi os.FileInfo, bit os.FileMode) bool {
		st := fi.Sys().(*syscall.Stat_t)
		m := fi.Mode().Perm()
		switch {
		case uid == 0:
			return true
		case int(st.Uid) == uid:
			return m&(bit<<6) != 0
		case int(st.Gid) == gid:
			return m&(bit<<3) != 0
		}
		return m&bit != 0
	}
	p = filepath.Clean(p)
	for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err.Error()
		}
		if !allowed(fi, 1) {
			return fmt.Sprintf("no search permission on %s (%v)", dir, fi.Mode().Perm())
		}
		if dir == "/" {
			break
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err.Error()
	}
	if !allowed(fi, 2) {
		st := fi.Sys().(*syscall.Stat_t)
		return fmt.Sprintf("the socket is %v, uid %d gid %d", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	return ""
}
