// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/bpfsh/bpfsh/bpf/cache"
)

// cacheValue is one VALUE of a memcached get reply.
type cacheValue struct {
	Key   string
	Flags uint32
	Data  []byte
}

// parseValues reads a memcached get reply's text: VALUE <key> <flags>
// <bytes>\r\n<data>\r\n, any number of times, then END\r\n and nothing
// after it.
func parseValues(text []byte) ([]cacheValue, error) {
	var out []cacheValue
	rest := text
	for {
		if bytes.Equal(rest, []byte("END\r\n")) {
			return out, nil
		}
		line, after, ok := bytes.Cut(rest, []byte("\r\n"))
		if !ok {
			return nil, fmt.Errorf("the reply %q does not end with END\\r\\n", text)
		}
		f := bytes.Fields(line)
		if len(f) != 4 || string(f[0]) != "VALUE" {
			return nil, fmt.Errorf("the reply line %q is not VALUE <key> <flags> <bytes>", line)
		}
		flags, err1 := strconv.ParseUint(string(f[2]), 10, 32)
		n, err2 := strconv.ParseUint(string(f[3]), 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("the reply line %q has flags or bytes that are not numbers", line)
		}
		if uint64(len(after)) < n+2 || !bytes.Equal(after[n:n+2], []byte("\r\n")) {
			return nil, fmt.Errorf("the reply's data for %q is not %d bytes followed by \\r\\n", f[1], n)
		}
		out = append(out, cacheValue{Key: string(f[1]), Flags: uint32(flags), Data: after[:n]})
		rest = after[n+2:]
	}
}

// udpReplyText checks that frame is a UDP reply to a get sent from the
// client's port with reqID (addresses and ports swapped, the request id
// echoed, datagram 0 of 1) and returns its text after the frame header.
func udpReplyText(frame []byte, port uint16, reqID uint16) ([]byte, error) {
	if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return nil, fmt.Errorf("the reply of %d bytes is not an IPv4 frame", len(frame))
	}
	ip := frame[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] != 17 || len(ip) < ihl+8 {
		return nil, fmt.Errorf("the reply is not a UDP datagram")
	}
	udp := ip[ihl:]
	sport, dport := binary.BigEndian.Uint16(udp), binary.BigEndian.Uint16(udp[2:])
	if sport != port || dport != cacheUDPPort {
		return nil, fmt.Errorf("the reply goes from port %d to %d, not from %d back to the client's %d", sport, dport, port, cacheUDPPort)
	}
	payload := udp[8:]
	if l := int(binary.BigEndian.Uint16(udp[4:])); l >= 8 && l <= len(udp) {
		payload = udp[8:l]
	}
	if len(payload) < cache.FrameHeaderLen {
		return nil, fmt.Errorf("the reply has no memcached frame header")
	}
	h := payload[:cache.FrameHeaderLen]
	if id := binary.BigEndian.Uint16(h); id != reqID {
		return nil, fmt.Errorf("the reply echoes request id %d, not %d", id, reqID)
	}
	if seq, total := binary.BigEndian.Uint16(h[2:]), binary.BigEndian.Uint16(h[4:]); seq != 0 || total != 1 {
		return nil, fmt.Errorf("the reply is datagram %d of %d, not 0 of 1", seq, total)
	}
	return payload[cache.FrameHeaderLen:], nil
}

// valueText is the text memcached answers a get of key with.
func valueText(key string, flags uint32, data []byte) []byte {
	t := fmt.Appendf(nil, "VALUE %s %d %d\r\n", key, flags, len(data))
	t = append(t, data...)
	return append(t, "\r\nEND\r\n"...)
}

// cacheValueJSON is a VALUE in JSON (-j).
type cacheValueJSON struct {
	Key   string       `json:"key"`
	Flags uint32       `json:"flags"`
	Bytes int          `json:"bytes"`
	Data  *kvBytesJSON `json:"data"`
}
