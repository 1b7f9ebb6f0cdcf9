package main

import (
	"io"
	"time"
)

// STUB (issue 18 skeleton): the report-sending helper replaces this file.

func reportsSend(args []string, stdout, stderr io.Writer, now time.Time) int {
	io.WriteString(stderr, "vouch reports send: not built yet\n")
	return 1
}
