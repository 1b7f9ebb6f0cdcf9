package hijack

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The admin socket serves `vouch accounts`. Protocol: one JSON request
// line, one JSON reply line, then the server closes the connection.
//
//	{"cmd":"list"}                      -> {"ok":true,"list":{...Listing}}
//	{"cmd":"release","login":"alice"}   -> {"ok":true,"login":"alice","released":true}
//	anything else                       -> {"ok":false,"error":"..."}
//
// Why a socket to the daemon instead of `vouch accounts` editing the state
// file or Redis itself: with the memory backend the counters exist only in
// the daemon's memory, and a release must take effect there at once (the
// daemon holds the freeze list in memory and would write its own copy back
// over an edited file at the next freeze). With Redis, editing Redis would
// work, but one way for both backends keeps the commands the same.
//
// Access is the socket file's: mode 0600, in a directory created 0750, so
// only root and vouch's user can release accounts.

// AdminRequest is one request line.
type AdminRequest struct {
	Cmd   string `json:"cmd"`
	Login string `json:"login,omitempty"`
}

// AdminReply is one reply line.
type AdminReply struct {
	OK       bool     `json:"ok"`
	Error    string   `json:"error,omitempty"`
	List     *Listing `json:"list,omitempty"`
	Login    string   `json:"login,omitempty"`
	Released bool     `json:"released,omitempty"` // the login was frozen
}

const adminTimeout = 10 * time.Second

// listenAdmin listens on a unix socket with mode 0600. A socket file left
// by a daemon that died is replaced; a path that is not a socket, a socket
// of another user, a socket a running daemon answers on, and a directory
// anyone can write to without the sticky bit are errors.
//
// The socket is bound in a private directory (0700) made next to path,
// set to 0600 there and renamed into place, so there is no moment at which
// it exists with the umask's looser mode where others can reach it. A
// rename does not replace another user's file in a sticky directory such
// as /tmp: someone who binds the path first makes vouch refuse to start,
// with a message that says so, never talk to their socket.
func listenAdmin(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	di, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if di.Mode().Perm()&0o002 != 0 && di.Mode()&fs.ModeSticky == 0 {
		return nil, fmt.Errorf("%s: directory %s is writable by everyone and not sticky, so anyone could replace the socket: use a directory only vouch can write to, such as /run/vouch", path, dir)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
			return nil, fmt.Errorf("%s is a socket of uid %d, not of vouch's uid %d: remove it or choose another admin_socket", path, uid, os.Geteuid())
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by a running process (another vouch?)", path)
		}
	}
	private, err := os.MkdirTemp(dir, ".admin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(private)
	bound := filepath.Join(private, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // the socket moves: adminListener removes it
	if err := os.Chmod(bound, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if adminBound != nil {
		adminBound(bound)
	}
	if err := os.Rename(bound, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("moving the socket into place: %w", err)
	}
	return &adminListener{ln, path}, nil
}

// adminBound, when set by a test, runs between binding and renaming.
var adminBound func(bound string)

// fileOwner is the uid that owns a file.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// adminListener removes the socket at its final path when closed.
type adminListener struct {
	*net.UnixListener
	path string
}

func (l *adminListener) Close() error {
	err := l.UnixListener.Close()
	os.Remove(l.path)
	return err
}

func (g *Guard) serveAdmin(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Warn("admin socket", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.handleAdmin(c)
		}()
	}
}

func (g *Guard) handleAdmin(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(adminTimeout))
	r := bufio.NewReader(&limitedReader{c, 64 << 10})
	line, err := r.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	var req AdminRequest
	var rep AdminReply
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := json.Unmarshal(line, &req); err != nil {
		rep.Error = "bad request: " + err.Error()
	} else {
		switch req.Cmd {
		case "list":
			l, err := g.List(ctx)
			if err != nil {
				rep.Error = err.Error()
			} else {
				rep.OK, rep.List = true, l
			}
		case "release":
			rep.Login = normalizeLogin(req.Login)
			was, err := g.Release(ctx, req.Login, "vouch accounts release (admin socket)")
			rep.Released = was
			if err != nil {
				rep.Error = err.Error()
			} else {
				rep.OK = true
			}
		default:
			rep.Error = fmt.Sprintf("unknown command %q", req.Cmd)
		}
	}
	out, _ := json.Marshal(rep)
	c.Write(append(out, '\n'))
}

type limitedReader struct {
	c net.Conn
	n int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too long")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}

// AdminCall sends one request to the daemon's admin socket.
func AdminCall(ctx context.Context, socket string, req AdminRequest) (*AdminReply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the vouch daemon on %s: %w (is vouch serve running with [hijack] enabled?)", socket, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(adminTimeout))
	}
	data, _ := json.Marshal(req)
	if _, err := c.Write(append(data, '\n')); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return nil, fmt.Errorf("admin socket %s: %w", socket, err)
	}
	var rep AdminReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return nil, fmt.Errorf("admin socket %s: bad reply: %w", socket, err)
	}
	if !rep.OK {
		return &rep, errors.New(rep.Error)
	}
	return &rep, nil
}

// AdminList asks the daemon for the counters and the frozen accounts.
func AdminList(ctx context.Context, socket string) (*Listing, error) {
	rep, err := AdminCall(ctx, socket, AdminRequest{Cmd: "list"})
	if err != nil {
		return nil, err
	}
	if rep.List == nil {
		return nil, errors.New("admin socket: reply without a list")
	}
	return rep.List, nil
}

// AdminRelease asks the daemon to unfreeze login and clear its counters;
// it reports whether the login was frozen.
func AdminRelease(ctx context.Context, socket, login string) (bool, error) {
	rep, err := AdminCall(ctx, socket, AdminRequest{Cmd: "release", Login: login})
	if err != nil {
		return false, err
	}
	return rep.Released, nil
}
