package main

import (
	"fmt"
	"io"
	"strings"

	"vouch/internal/mtaclient"
)

// Corpus kinds.
const (
	CorpusSmall = "small" // 2-5 KiB messages
	CorpusMixed = "mixed" // mostly small, some large, up to 10 MiB
	CorpusHuge  = "huge"  // every message HugeSize bytes
)

// Bounds of the generated sizes (whole message: header block and body).
const (
	smallMin = 2 << 10
	smallMax = 5 << 10
	mixedMax = 10 << 20
)

// Corpus generates messages on the fly from a seed: message i is the same
// for the same seed, kind and domain, whoever asks and in which order.
type Corpus struct {
	Kind     string
	Seed     uint64
	HugeSize int64  // size of every message of the huge corpus
	Domain   string // From domain
	Rcpt     string // envelope recipient and To
	text     []byte // text block the bodies are cut from
}

// NewCorpus checks the kind and prepares the text block.
func NewCorpus(kind string, seed uint64, hugeSize int64, domain, rcpt string) (*Corpus, error) {
	switch kind {
	case CorpusSmall, CorpusMixed:
	case CorpusHuge:
		if hugeSize < smallMin {
			return nil, fmt.Errorf("corpus huge: -size %d is below %d bytes", hugeSize, smallMin)
		}
	default:
		return nil, fmt.Errorf("unknown corpus %q (want small, mixed or huge)", kind)
	}
	if rcpt == "" {
		rcpt = "rcpt@remote.example"
	}
	return &Corpus{Kind: kind, Seed: seed, HugeSize: hugeSize, Domain: domain, Rcpt: rcpt, text: textBlock(seed)}, nil
}

// splitmix64 is a tiny deterministic generator.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (s *splitmix64) intn(n int) int { return int(s.next() % uint64(n)) }

// between returns a value in [lo, hi].
func (s *splitmix64) between(lo, hi int64) int64 { return lo + int64(s.next()%uint64(hi-lo+1)) }

var words = strings.Fields(`the quick brown fox jumps over lazy dog mail server signature domain key
selector header body message relaxed canonical hash stream postfix milter queue deliver
report invoice meeting agenda tomorrow please find attached regards thanks budget quarter
Grüße naïve café résumé déjà vu 0123456789 lorem ipsum dolor sit amet consectetur`)

// textBlock is 64 KiB of text lines (CRLF, 20-78 characters, some with
// trailing white space and some empty) that bodies are cut from.
func textBlock(seed uint64) []byte {
	rng := splitmix64(seed ^ 0x5eed)
	var b strings.Builder
	for b.Len() < 64<<10 {
		n := 20 + rng.intn(59)
		line := ""
		for len(line) < n {
			if line != "" {
				line += " "
			}
			line += words[rng.intn(len(words))]
		}
		switch rng.intn(20) {
		case 0:
			line += "  \t"
		case 1:
			line = ""
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

// Spec is one message of the corpus.
type Spec struct {
	Index   uint64
	Size    int64 // whole message, header block (with its blank line) and body
	From    string
	Headers []mtaclient.Header
	bodyOff int // where the body starts in the text block
	text    []byte
}

// Spec returns message i.
func (c *Corpus) Spec(i uint64) Spec {
	rng := splitmix64(c.Seed*0x100000001b3 ^ i)
	rng.next()
	var size int64
	switch c.Kind {
	case CorpusSmall:
		size = rng.between(smallMin, smallMax)
	case CorpusMixed:
		// 70% 2-8 KiB, 20% 8-100 KiB, 8% 100 KiB-1 MiB, 2% 1-10 MiB
		// (mean about 170 KiB).
		switch p := rng.intn(100); {
		case p < 70:
			size = rng.between(smallMin, 8<<10)
		case p < 90:
			size = rng.between(8<<10, 100<<10)
		case p < 98:
			size = rng.between(100<<10, 1<<20)
		default:
			size = rng.between(1<<20, mixedMax)
		}
	default:
		size = c.HugeSize
	}
	user := fmt.Sprintf("user%d", rng.intn(1000))
	from := user + "@" + c.Domain
	id := fmt.Sprintf("%d.%x", i, c.Seed)
	subject := " Load test message " + id
	if rng.intn(4) == 0 {
		// A folded Subject, as Postfix hands it over: bare LF, then the
		// continuation line with its leading white space.
		subject += "\n\twith a folded second line"
	}
	headers := []mtaclient.Header{
		{Name: "Received", Value: " from desk" + fmt.Sprint(rng.intn(100)) + ".internal.example (desk.internal.example [10.1.2.3])\n\tby submit.internal.example (Postfix) with ESMTPSA id 4Q" + fmt.Sprintf("%08X", uint32(rng.next())) + "\n\tfor <" + c.Rcpt + ">; Wed, 25 Nov 2026 10:00:00 +0000"},
		{Name: "From", Value: " \"User " + user + "\" <" + from + ">"},
		{Name: "To", Value: " <" + c.Rcpt + ">"},
		{Name: "Subject", Value: subject},
		{Name: "Date", Value: " Wed, 25 Nov 2026 10:00:00 +0000"},
		{Name: "Message-ID", Value: " <" + id + "@" + c.Domain + ">"},
		{Name: "MIME-Version", Value: " 1.0"},
		{Name: "Content-Type", Value: " text/plain; charset=utf-8"},
		{Name: "Content-Transfer-Encoding", Value: " 8bit"},
	}
	// The body starts at the beginning of a line of the text block.
	off := rng.intn(len(c.text))
	for off > 0 && c.text[off-1] != '\n' {
		off--
	}
	s := Spec{Index: i, Size: size, From: from, Headers: headers, bodyOff: off, text: c.text}
	if min := s.HeaderSize() + 2; s.Size < min {
		s.Size = min
	}
	return s
}

// HeaderSize is the size of the header block as the receiver gets it
// (CRLF line ends and the blank line).
func (s Spec) HeaderSize() int64 {
	n := int64(2)
	for _, h := range s.Headers {
		n += int64(len(h.Name)+1+len(h.Value)+2) + int64(strings.Count(h.Value, "\n"))
	}
	return n
}

// BodySize is Size less the header block.
func (s Spec) BodySize() int64 { return s.Size - s.HeaderSize() }

// Body streams the body: BodySize bytes of CRLF text, ending in CRLF.
func (s Spec) Body() io.Reader {
	return &bodyReader{text: s.text, pos: s.bodyOff, left: s.BodySize()}
}

// Message is the milter client's view of the message.
func (s Spec) Message(clientIP, clientName, helo, auth string, rcpt string) *mtaclient.Message {
	return &mtaclient.Message{
		ClientIP:   clientIP,
		ClientName: clientName,
		HELO:       helo,
		From:       s.From,
		Rcpts:      []string{rcpt},
		AuthUser:   auth,
		QueueID:    fmt.Sprintf("4Q%010X", s.Index),
		Headers:    s.Headers,
		Body:       s.Body(),
	}
}

// bodyReader cycles through the text block; its last two bytes are CRLF.
type bodyReader struct {
	text []byte
	pos  int
	left int64
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.left > 2 {
		want := int(min(int64(len(p)-n), r.left-2))
		c := copy(p[n:n+want], r.text[r.pos:])
		if r.left-int64(c) == 2 && p[n+c-1] == '\r' {
			p[n+c-1] = '.' // no CR right before the final CRLF
		}
		n += c
		r.left -= int64(c)
		r.pos = (r.pos + c) % len(r.text)
	}
	for n < len(p) && r.left > 0 && r.left <= 2 {
		p[n] = "\r\n"[2-r.left]
		n++
		r.left--
	}
	return n, nil
}
