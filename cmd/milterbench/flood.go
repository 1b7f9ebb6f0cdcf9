package main

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Flood stages: what each flooding connection sends.
const (
	FloodOptneg = "optneg" // only a packet length, before negotiation
	FloodHeader = "header" // a valid OPTNEG, then the length of a header packet whose data never comes
)

// FloodStats is what the flooding connections saw.
type FloodStats struct {
	Conns     int    `json:"conns"`      // flooding connections at once
	Stage     string `json:"stage"`      // FloodOptneg or FloodHeader
	Length    int64  `json:"length"`     // the packet length each announced
	Opened    int64  `json:"opened"`     // connections opened in all
	Closed    int64  `json:"closed"`     // closed by the milter
	DialError int64  `json:"dial_error"` // connections that could not be opened
}

// flood keeps cfg.Flood hostile connections open against the milter
// until stop is closed: each announces a packet of cfg.FloodLength bytes,
// sends none of it and waits for the milter to close the connection, then
// starts over.
func flood(network, address string, cfg *Config, stop <-chan struct{}) (wait func() *FloodStats) {
	st := &FloodStats{Conns: cfg.Flood, Stage: cfg.FloodStage, Length: cfg.FloodLength}
	var opened, closed, dialErr atomic.Int64
	optneg := packetBytes('O', []byte{0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff})
	var wg sync.WaitGroup
	for range cfg.Flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout(network, address, 5*time.Second)
				if err != nil {
					dialErr.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				opened.Add(1)
				if floodOne(c, cfg, optneg, stop) {
					closed.Add(1)
				}
				c.Close()
			}
		}()
	}
	return func() *FloodStats {
		wg.Wait()
		st.Opened, st.Closed, st.DialError = opened.Load(), closed.Load(), dialErr.Load()
		return st
	}
}

// floodOne sends one hostile prefix on c and reports whether the milter
// closed the connection (rather than the flood ending).
func floodOne(c net.Conn, cfg *Config, optneg []byte, stop <-chan struct{}) bool {
	prefix := binary.BigEndian.AppendUint32(nil, uint32(cfg.FloodLength))
	if cfg.FloodStage == FloodHeader {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(optneg); err != nil {
			return true
		}
		var l [4]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return true
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(l[:]))); err != nil {
			return true
		}
		prefix = append(prefix, 'L')
	}
	if _, err := c.Write(prefix); err != nil {
		return true
	}
	buf := make([]byte, 64)
	for {
		select {
		case <-stop:
			return false
		default:
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return true
		}
	}
}

func packetBytes(cmd byte, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(b, cmd), data...)
}
