package signer

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ServiceUsers are the accounts a packaged daemon runs as: vouch's own,
// and OpenDKIM's before its keys are handed over. Root checking a
// configuration (serve -check, check, testkey) accepts what the daemon
// would accept running as one of them.
var ServiceUsers = []string{"vouch", "opendkim"}

// The account databases the group checks read (OpenDKIM asks getpwent and
// getgrgid; vouch reads the files, which is what they say on a mail
// server without NSS directories). Tests point them elsewhere.
var (
	passwdFile = "/etc/passwd"
	groupFile  = "/etc/group"
)

type account struct {
	name string
	uid  uint32
	gid  uint32
}

type accounts struct {
	users   []account
	members map[uint32][]string // gid → supplementary members
	groups  map[uint32]bool     // gids that exist
}

func readAccounts() (*accounts, error) {
	a := &accounts{members: map[uint32][]string{}, groups: map[uint32]bool{}}
	err := eachLine(passwdFile, func(f []string) {
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 == nil && err2 == nil {
			a.users = append(a.users, account{f[0], uint32(uid), uint32(gid)})
		}
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(groupFile, func(f []string) {
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return
		}
		a.groups[uint32(gid)] = true
		if len(f) > 3 && f[3] != "" {
			a.members[uint32(gid)] = append(a.members[uint32(gid)], strings.Split(f[3], ",")...)
		}
	})
	return a, err
}

// eachLine calls fn with the colon-separated fields of every line that has
// at least three.
func eachLine(path string, fn func([]string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Split(sc.Text(), ":"); len(fields) >= 4 {
			fn(fields)
		}
	}
	return sc.Err()
}

func (a *accounts) byUID(uid uint32) account {
	for _, u := range a.users {
		if u.uid == uid {
			return u
		}
	}
	return account{uid: uid}
}

// identities are the users whose view of a key counts: the running user,
// and for root also the service users that exist.
func (a *accounts) identities() []account {
	ids := []account{a.byUID(uint32(os.Geteuid()))}
	if ids[0].uid == 0 {
		for _, u := range a.users {
			if slices.Contains(ServiceUsers, u.name) && u.uid != 0 {
				ids = append(ids, u)
			}
		}
	}
	return ids
}

// unsafeKeyPath is OpenDKIM 2.11's RequireSafeKeys (opendkim.c
// dkimf_securefile and dkimf_checkfsnode), for the key opened as fi: it
// returns why the key is unsafe, or "". The path is resolved (symlinks,
// "..") and every node from / down to the file is checked for me, the
// running user, where root also counts as me:
//   - the file belongs to me; group read or write is allowed only when
//     nobody else has the file's group, as primary group or as a member;
//     others may neither read nor write it;
//   - a directory is not writable by others, writable by its group only
//     when nobody else is in it, and if writable by its owner, owned by me.
//
// One deliberate difference: a directory with the sticky bit owned by me
// (like /tmp) passes even though others may write to it, since nobody can
// rename or delete what it holds; OpenDKIM refuses every key below /tmp.
// Root also accepts what a service user would (see ServiceUsers).
func unsafeKeyPath(path string, fi os.FileInfo) string {
	acc, err := readAccounts()
	if err != nil {
		return fmt.Sprintf("cannot check who may read it: %v", err)
	}
	abs, err := filepath.Abs(path)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return fmt.Sprintf("cannot resolve its path: %v", err)
	}
	ids := acc.identities()
	reason := ""
	var also []string
	for i, me := range ids {
		r := acc.unsafeFor(abs, fi, me)
		if r == "" {
			return ""
		}
		if i == 0 {
			reason = r
		} else {
			also = append(also, me.name)
		}
	}
	if len(also) > 0 {
		reason += fmt.Sprintf("; nor is it safe for the service user %s", strings.Join(also, " or "))
	}
	return reason
}

// unsafeFor checks the resolved path node by node for one user.
func (a *accounts) unsafeFor(real string, opened os.FileInfo, me account) string {
	nodes := []string{"/"}
	for p := real; p != "/"; p = filepath.Dir(p) {
		nodes = append(nodes, p)
	}
	slices.Reverse(nodes[1:])
	mine := func(uid uint32) bool { return uid == 0 || uid == me.uid }
	for _, node := range nodes {
		fi, err := os.Stat(node)
		if err != nil {
			return err.Error()
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return ""
		}
		perm := fi.Mode().Perm()
		switch {
		case fi.Mode().IsRegular():
			if !mine(st.Uid) {
				return fmt.Sprintf("owned by uid %d, not by %s", st.Uid, me.describe())
			}
			if perm&0o060 != 0 {
				if r := a.sharedGroup(st.Gid, me); r != "" {
					return fmt.Sprintf("mode %04o lets group %d read or write it, and %s", perm, st.Gid, r)
				}
			}
			if perm&0o006 != 0 {
				return fmt.Sprintf("mode %04o lets others read or write it", perm)
			}
			if !os.SameFile(fi, opened) {
				return "it was replaced while being checked"
			}
		case fi.IsDir():
			if fi.Mode()&os.ModeSticky != 0 && mine(st.Uid) {
				continue
			}
			if perm&0o002 != 0 {
				return fmt.Sprintf("directory %s is writable by others (mode %04o)", node, perm)
			}
			if perm&0o020 != 0 {
				if r := a.sharedGroup(st.Gid, me); r != "" {
					return fmt.Sprintf("directory %s is writable by group %d, and %s", node, st.Gid, r)
				}
			}
			if perm&0o200 != 0 && !mine(st.Uid) {
				return fmt.Sprintf("directory %s is writable by its owner uid %d, not by %s", node, st.Uid, me.describe())
			}
		}
	}
	return ""
}

// sharedGroup says who else is in group gid besides me and root, or "".
func (a *accounts) sharedGroup(gid uint32, me account) string {
	if !a.groups[gid] {
		return fmt.Sprintf("group %d is not in %s", gid, groupFile)
	}
	for _, u := range a.users {
		if u.gid == gid && u.uid != 0 && u.uid != me.uid {
			return fmt.Sprintf("user %s has that group", u.name)
		}
	}
	for _, m := range a.members[gid] {
		if m != "root" && m != me.name {
			return fmt.Sprintf("user %s is a member of that group", m)
		}
	}
	return ""
}

// describe names the owners a key may have for u.
func (u account) describe() string {
	switch {
	case u.uid == 0:
		return "root"
	case u.name == "":
		return fmt.Sprintf("root or the running uid %d", u.uid)
	}
	return fmt.Sprintf("root or the running user %s (uid %d)", u.name, u.uid)
}
