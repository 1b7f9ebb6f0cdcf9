package dmarcreport

import (
	"errors"
	"io"
)

// STUB (issue 18 skeleton): the incoming-report helper replaces this file.

// Limits bound what reading a report message may cost.
type Limits struct {
	MaxMessage int64 // bytes of the whole message read
	MaxXML     int64 // bytes of XML one attachment may unpack to
}

// ParseMessage reads the aggregate reports attached to a mail message
// (headers and body as received).
func ParseMessage(r io.Reader, lim Limits) ([]Feedback, error) {
	return nil, errors.New("not built yet")
}
