// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"encoding/binary"
	"fmt"
)

// EventKind says what an event reports.
type EventKind uint32

// The event kinds (EV_* in proxy.bpf.c).
const (
	EventClientWaiting EventKind = iota + 1 // no idle server: the client's bytes were passed to its socket (user space reads them)
	EventClientPassed                       // bytes passed to user space for another reason (Terminate 'X', unparseable, too large)
	EventServerIdle                         // a server went back onto an empty idle stack (serve a waiting client: drain PopIdle)
	EventServerPassed                       // server bytes with no linked client were passed to user space
	EventServerHeld                         // a server was unlinked but not made idle: a cancel request for it is in flight (Hold); Unhold releases it
)

// String names the kind.
func (k EventKind) String() string {
	switch k {
	case EventClientWaiting:
		return "client-waiting"
	case EventClientPassed:
		return "client-passed"
	case EventServerIdle:
		return "server-idle"
	case EventServerPassed:
		return "server-passed"
	case EventServerHeld:
		return "server-held"
	}
	return fmt.Sprintf("event(%d)", uint32(k))
}

// Reason says why bytes were passed to user space (WHY_* in proxy.bpf.c).
type Reason uint32

// The reasons.
const (
	ReasonNone      Reason = iota
	ReasonTerminate        // the client sent Terminate 'X'
	ReasonMalformed        // a message length < 4 or over MaxMessageLen: the stream is lost
	ReasonBound            // more than WalkSteps messages in one chunk
	ReasonNoPeer           // no linked peer (no idle server for a client; no client for a server)
	ReasonRedirect         // the peer was gone from its sockhash
	ReasonCancel           // a cancel request for the server is in flight
	ReasonBadType          // a message type no logged-in client may send
)

// String names the reason.
func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return "none"
	case ReasonTerminate:
		return "terminate"
	case ReasonMalformed:
		return "malformed"
	case ReasonBound:
		return "bound"
	case ReasonNoPeer:
		return "no-peer"
	case ReasonRedirect:
		return "redirect-failed"
	case ReasonCancel:
		return "cancel"
	case ReasonBadType:
		return "bad-type"
	}
	return fmt.Sprintf("reason(%d)", uint32(r))
}

// Event is one record of the ring buffer. Peer is the socket's linked
// peer when the event was sent (for EventServerIdle: the client it
// served last), or 0.
type Event struct {
	Kind   EventKind
	Sock   Sock
	Peer   Sock
	Reason Reason
}

// eventSize is sizeof(struct pg_event).
const eventSize = 24

// Events returns the channel of events from the ring buffer; Close closes
// it. Read it steadily: while it is full the reader stops, the ring
// buffer fills and the kernel drops events (counter event_lost).
func (d *Datapath) Events() <-chan Event { return d.events }

func (d *Datapath) readEvents() {
	defer d.wg.Done()
	defer close(d.events)
	for {
		rec, err := d.rd.Read()
		if err != nil {
			return // closed
		}
		if len(rec.RawSample) < eventSize {
			continue
		}
		b := rec.RawSample
		e := Event{
			Kind:   EventKind(binary.NativeEndian.Uint32(b[0:])),
			Reason: Reason(binary.NativeEndian.Uint32(b[4:])),
			Sock:   Sock(binary.NativeEndian.Uint64(b[8:])),
			Peer:   Sock(binary.NativeEndian.Uint64(b[16:])),
		}
		select {
		case d.events <- e:
		case <-d.done:
			return
		}
	}
}
