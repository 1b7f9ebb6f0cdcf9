package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	gomilter "github.com/d--j/go-milter"
	"github.com/emersion/go-msgauth/dkim"
)

// The peers are the two reference milters of the performance comparison,
// run in the same benchmark as vouch so that the ratios are measured on
// one machine at one time (bench/compare.sh):
//
//   - noop accepts everything. It negotiates the events and replies vouch
//     negotiates, so its throughput is the ceiling of the milter protocol
//     (Postfix-like client, go-milter server) on this machine.
//   - naive signs like the simplest go-msgauth milter one would write: it
//     buffers the message and signs it with dkim.Sign at end of message;
//     no trust checks, no tables, no metrics, no logs.
const (
	PeerNoop  = "noop"
	PeerNaive = "naive"
)

// peerProtocol is vouch's protocol negotiation (milter/server.go).
const peerProtocol = gomilter.OptNoData | gomilter.OptNoUnknown | gomilter.OptNoRcptReply |
	gomilter.OptNoHeaderReply | gomilter.OptNoEOHReply | gomilter.OptNoBodyReply |
	gomilter.OptHeaderLeadingSpace

// PeerConfig says which peer to run and, for naive, how it signs.
type PeerConfig struct {
	Kind     string
	Domain   string
	Selector string
	Key      crypto.Signer // naive only
}

// servePeer runs a peer milter on ln until the listener is closed.
func servePeer(ln net.Listener, cfg PeerConfig) error {
	var newMilter func() gomilter.Milter
	switch cfg.Kind {
	case PeerNoop:
		newMilter = func() gomilter.Milter { return &gomilter.NoOpMilter{} }
	case PeerNaive:
		if cfg.Key == nil {
			return errors.New("naive peer: no key")
		}
		opts := &dkim.SignOptions{
			Domain: cfg.Domain, Selector: cfg.Selector, Signer: cfg.Key,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
			HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"},
		}
		newMilter = func() gomilter.Milter { return &naiveSigner{opts: opts} }
	default:
		return fmt.Errorf("unknown peer %q: want %s or %s", cfg.Kind, PeerNoop, PeerNaive)
	}
	srv := gomilter.NewServer(
		gomilter.WithMilter(newMilter),
		gomilter.WithProtocols(peerProtocol),
		gomilter.WithActions(gomilter.OptAddHeader),
	)
	err := srv.Serve(ln)
	if errors.Is(err, gomilter.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// naiveSigner buffers one message and signs it at end of message.
type naiveSigner struct {
	gomilter.NoOpMilter
	opts *dkim.SignOptions
	msg  bytes.Buffer
}

func (n *naiveSigner) Header(name, value string, _ gomilter.Modifier) (*gomilter.Response, error) {
	// Header values arrive with their leading space (OptHeaderLeadingSpace)
	// and LF-only folding.
	n.msg.WriteString(name)
	n.msg.WriteByte(':')
	n.msg.WriteString(strings.ReplaceAll(value, "\n", "\r\n"))
	n.msg.WriteString("\r\n")
	return gomilter.RespContinue, nil
}

func (n *naiveSigner) Headers(_ gomilter.Modifier) (*gomilter.Response, error) {
	n.msg.WriteString("\r\n")
	return gomilter.RespContinue, nil
}

func (n *naiveSigner) BodyChunk(chunk []byte, _ gomilter.Modifier) (*gomilter.Response, error) {
	n.msg.Write(chunk)
	return gomilter.RespContinue, nil
}

func (n *naiveSigner) EndOfMessage(m gomilter.Modifier) (*gomilter.Response, error) {
	defer n.msg.Reset()
	var out bytes.Buffer
	if err := dkim.Sign(&out, &n.msg, n.opts); err != nil {
		return gomilter.RespTempFail, nil
	}
	// dkim.Sign writes "DKIM-Signature: v=1; ..." and then the message.
	sig, _, _ := bytes.Cut(out.Bytes(), []byte("\r\n\r\n"))
	first, _, _ := bytes.Cut(sig, []byte("\r\n"+"From:"))
	name, value, _ := strings.Cut(string(first), ":")
	if err := m.AddHeader(name, strings.ReplaceAll(strings.TrimPrefix(value, " "), "\r\n", "\n")); err != nil {
		return nil, err
	}
	return gomilter.RespAccept, nil
}

func (n *naiveSigner) Abort(_ gomilter.Modifier) error {
	n.msg.Reset()
	return nil
}

// loadSigningKey reads a PEM private key (PKCS#1 or PKCS#8), as written by
// `vouch genkey` and opendkim-genkey.
func loadSigningKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	return s, nil
}

// runPeer is milterbench -peer KIND -listen ADDR: it prints the address it
// listens on and serves until killed.
func runPeer(kind, listen, keyFile, domain, selector string, stdout, stderr io.Writer) int {
	cfg := PeerConfig{Kind: kind, Domain: domain, Selector: selector}
	if kind == PeerNaive {
		k, err := loadSigningKey(keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "milterbench: -peer-key: %v\n", err)
			return 2
		}
		cfg.Key = k
	}
	network, addr := "tcp", listen
	if p, ok := strings.CutPrefix(listen, "unix:"); ok {
		network, addr = "unix", p
		os.Remove(p)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		fmt.Fprintf(stderr, "milterbench: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, ln.Addr())
	if err := servePeer(ln, cfg); err != nil {
		fmt.Fprintf(stderr, "milterbench: %v\n", err)
		return 1
	}
	return 0
}
