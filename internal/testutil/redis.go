package testutil

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Redis is a private redis-server on a free loopback port, never the
// system one, stopped when the test ends.
type Redis struct {
	t    testing.TB
	Port int
	Dir  string
	args []string // added to the command line (replication, cluster mode)
	conf string   // non-empty: run as a Sentinel with this config
	cmd  *exec.Cmd
}

// RequireRedis returns the path of redis-server. A missing one fails the
// test unless VOUCH_SKIP_E2E is set.
func RequireRedis(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("VOUCH_SKIP_E2E") != "" {
			t.Skip("redis-server not installed and VOUCH_SKIP_E2E set")
		}
		t.Fatal("redis-server is not installed: apt-get install redis-server (the Redis backend tests run a private one), or set VOUCH_SKIP_E2E=1")
	}
	return path
}

// StartRedis starts a redis-server without persistence; args are added
// to its command line.
func StartRedis(t testing.TB, args ...string) *Redis {
	t.Helper()
	r := newRedis(t)
	r.args = args
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

func newRedis(t testing.TB) *Redis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return &Redis{t: t, Port: port, Dir: t.TempDir()}
}

// StartSentinel runs redis-server as a Sentinel watching master as "m",
// quick to fail over.
func StartSentinel(t testing.TB, master *Redis) *Redis {
	t.Helper()
	r := newRedis(t)
	r.conf = filepath.Join(r.Dir, "sentinel.conf")
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor m 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds m 500\nsentinel failover-timeout m 5000\n", r.Port, r.Dir, master.Port)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is the server's redis:// URL, database 0.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// Addr is the server's host:port.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// Start (re)starts the server on its port and waits until it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	bin := RequireRedis(r.t)
	if r.conf != "" {
		r.cmd = exec.Command(bin, r.conf, "--sentinel")
	} else {
		r.cmd = exec.Command(bin, append([]string{"--save", "", "--appendonly", "no", "--port", fmt.Sprint(r.Port),
			"--bind", "127.0.0.1", "--dir", r.Dir, "--daemonize", "no"}, r.args...)...)
	}
	var out strings.Builder
	r.cmd.Stdout, r.cmd.Stderr = &out, &out
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
			fmt.Fprintf(c, "PING\r\n")
			c.SetReadDeadline(time.Now().Add(time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.cmd.Process.Kill()
	r.t.Fatalf("redis-server did not start on port %d:\n%s", r.Port, out.String())
}

// Stop kills this test's redis-server (by its own pid) and waits for it.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// StartRedisCluster starts a Cluster of three masters (created with
// redis-cli, package redis-tools) and returns their addresses once every
// node says cluster_state:ok.
func StartRedisCluster(t testing.TB) []string {
	t.Helper()
	var addrs []string
	for range 3 {
		n := StartRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		addrs = append(addrs, n.Addr())
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not installed (package redis-tools)")
	}
	out, err := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			info, _ := exec.Command(cli, "-h", "127.0.0.1", "-p", a[strings.LastIndexByte(a, ':')+1:], "cluster", "info").Output()
			if strings.Contains(string(info), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for cluster_state:ok on %s", a)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs
}
