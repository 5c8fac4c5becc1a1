// SPDX-License-Identifier: Apache-2.0

package proxy

import "encoding/binary"

// modelWalk is the walker's reference in Go: the same state, fed the same
// chunks, must give the same results (PROTOCOL.md "The walker").
type modelWalk struct {
	server  bool
	remain  uint32
	hdr     []byte
	status  bool
	broken  bool
	last    byte
	lastRFQ byte
}

type modelResult struct {
	msgs, queries, syncs, calls, ready uint32
	terminate                          bool
	rfq                                byte
	malformed                          bool
	badType                            bool
}

func (m *modelWalk) walk(chunk []byte) modelResult {
	var r modelResult
	if m.broken {
		r.malformed = true
		return r
	}
	for len(chunk) > 0 {
		if m.remain == 0 {
			need := 5 - len(m.hdr)
			take := min(need, len(chunk))
			m.hdr = append(m.hdr, chunk[:take]...)
			chunk = chunk[take:]
			if len(m.hdr) < 5 {
				break
			}
			typ, l := m.hdr[0], binary.BigEndian.Uint32(m.hdr[1:])
			m.hdr = nil
			if l < 4 || l > MaxMessageLen {
				r.malformed = true
				m.broken = true
				return r
			}
			r.msgs++
			r.rfq = 0
			m.last = typ
			m.remain = l - 4
			if m.server {
				m.status = typ == 'Z' && l == 5
			} else {
				switch typ {
				case 'Q':
					r.queries++
				case 'S':
					r.syncs++
				case 'F':
					r.calls++
				case 'X':
					r.terminate = true
				case 'B', 'C', 'D', 'E', 'H', 'P', 'c', 'd', 'f':
				default:
					r.badType = true
				}
			}
		}
		if m.status && len(chunk) > 0 {
			m.status = false
			r.rfq, m.lastRFQ = chunk[0], chunk[0]
			r.ready++
			m.remain--
			chunk = chunk[1:]
		}
		take := min(int(m.remain), len(chunk))
		m.remain -= uint32(take)
		chunk = chunk[take:]
	}
	return r
}
