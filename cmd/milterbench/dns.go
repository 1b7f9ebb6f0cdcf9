package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"vouch/internal/dnstest"
)

// serveDNS runs vouch's test DNS server (internal/dnstest: UDP and TCP on
// 127.0.0.1, NXDOMAIN/NODATA with an SOA so that resolvers cache negative
// answers) with the records of a zone file: one record per line in zone
// file syntax with absolute names ("host.test. 300 IN A 192.0.2.1");
// blank lines and lines starting with ; or # are skipped.
func serveDNS(zone, addrFile string, stdout, stderr io.Writer) int {
	f, err := os.Open(zone)
	if err != nil {
		fmt.Fprintf(stderr, "milterbench: %v\n", err)
		return 1
	}
	srv, err := dnstest.Start()
	if err != nil {
		fmt.Fprintf(stderr, "milterbench: %v\n", err)
		return 1
	}
	defer srv.Close()
	sc := bufio.NewScanner(f)
	n, line := 0, 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, ";") || strings.HasPrefix(t, "#") {
			continue
		}
		if err := srv.Add(t); err != nil {
			fmt.Fprintf(stderr, "milterbench: %s:%d: %v\n", zone, line, err)
			return 1
		}
		n++
	}
	f.Close()
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "milterbench: %s: %v\n", zone, err)
		return 1
	}
	if addrFile != "" {
		if err := os.WriteFile(addrFile+".tmp", []byte(srv.Addr+"\n"), 0o644); err != nil {
			fmt.Fprintf(stderr, "milterbench: %v\n", err)
			return 1
		}
		if err := os.Rename(addrFile+".tmp", addrFile); err != nil {
			fmt.Fprintf(stderr, "milterbench: %v\n", err)
			return 1
		}
	}
	fmt.Fprintln(stdout, srv.Addr)
	fmt.Fprintf(stderr, "milterbench: serving %d records of %s on %s (udp and tcp)\n", n, zone, srv.Addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Fprintf(stderr, "milterbench: %d DNS queries answered\n", srv.Queries())
	return 0
}
