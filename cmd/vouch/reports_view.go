package main

import (
	"io"
	"time"
)

// STUB (issue 18 skeleton): the reports-view helper replaces this file.

func reportsList(args []string, stdout, stderr io.Writer, now time.Time) int {
	io.WriteString(stderr, "vouch reports list: not built yet\n")
	return 1
}

func reportsHTML(args []string, stdout, stderr io.Writer, now time.Time) int {
	io.WriteString(stderr, "vouch reports html: not built yet\n")
	return 1
}
