package testutil

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
)

// GunzipAttachment returns the first attachment of a multipart message
// (base64, as vouch writes them), gunzipped.
func GunzipAttachment(t testing.TB, msg []byte) []byte {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("reading the message: %v", err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no attachment: %v", err)
		}
		if !strings.HasPrefix(p.Header.Get("Content-Disposition"), "attachment") {
			continue
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatalf("attachment: %v", err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("attachment: %v", err)
		}
		return b
	}
}
