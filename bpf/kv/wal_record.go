// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"encoding/binary"
	"fmt"
)

// WriteOp is what one write of a committed transaction does.
type WriteOp uint8

// The write ops of struct kv_log_write.
const (
	WriteSet WriteOp = 1
	WriteDel WriteOp = 2
)

func (o WriteOp) String() string {
	switch o {
	case WriteSet:
		return "SET"
	case WriteDel:
		return "DEL"
	}
	return fmt.Sprintf("writeop%d", uint8(o))
}

// Sizes of the log record as the kernel lays it out (PROTOCOL.md).
const (
	// LogWriteSize is sizeof(struct kv_log_write): op, klen, vlen, key[64], value[512].
	LogWriteSize = 4 + MaxKey + MaxValue
	// LogRecordHeaderSize is the part of struct kv_log_record before w[].
	LogRecordHeaderSize = 32
	// LogRecordSize is sizeof(struct kv_log_record), what one commit
	// reserves in the log ring buffer.
	LogRecordSize = LogRecordHeaderSize + MaxWrites*LogWriteSize
)

// LogWrite is one write of a committed transaction.
type LogWrite struct {
	Op    WriteOp
	Key   []byte
	Value []byte // SET only; a DEL carries none
}

// LogRecord is one committed write set: what the kernel reserves in the
// log ring buffer (struct kv_log_record) and what one WAL record holds.
type LogRecord struct {
	Seq     uint64 // commit_seq of the commit; strictly increasing
	TxID    uint64 // 0 for an auto-committed write
	KtimeNS uint64 // bpf_ktime_get_ns() at commit; not kept in the WAL
	Writes  []LogWrite
}

// checkWrite says what is wrong with one write, or nil.
func checkWrite(op WriteOp, klen, vlen int) error {
	switch {
	case op != WriteSet && op != WriteDel:
		return fmt.Errorf("op %d is neither SET (1) nor DEL (2)", uint8(op))
	case klen < 1 || klen > MaxKey:
		return fmt.Errorf("key of %d bytes (1..%d)", klen, MaxKey)
	case vlen > MaxValue:
		return fmt.Errorf("value of %d bytes (at most %d)", vlen, MaxValue)
	case op == WriteDel && vlen != 0:
		return fmt.Errorf("DEL with a %d-byte value", vlen)
	}
	return nil
}

// Check says what makes r unfit for the log, or returns nil.
func (r *LogRecord) Check() error {
	if n := len(r.Writes); n < 1 || n > MaxWrites {
		return fmt.Errorf("log record seq %d: %d writes (1..%d)", r.Seq, n, MaxWrites)
	}
	for i, w := range r.Writes {
		if err := checkWrite(w.Op, len(w.Key), len(w.Value)); err != nil {
			return fmt.Errorf("log record seq %d: write %d: %w", r.Seq, i, err)
		}
	}
	return nil
}

// AppendRing appends r as the kernel writes it into the log ring buffer:
// struct kv_log_record, host byte order, keys and values zero-padded, all
// 16 write slots present. Test producers use it to hand records to BPF.
func (r *LogRecord) AppendRing(b []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, LogRecordSize)...)
	rec := b[start:]
	ne := binary.NativeEndian
	ne.PutUint64(rec[0:], r.Seq)
	ne.PutUint64(rec[8:], r.TxID)
	ne.PutUint64(rec[16:], r.KtimeNS)
	ne.PutUint32(rec[24:], uint32(len(r.Writes)))
	for i, w := range r.Writes {
		if i == MaxWrites {
			break
		}
		s := rec[LogRecordHeaderSize+i*LogWriteSize:]
		s[0], s[1] = byte(w.Op), byte(len(w.Key))
		ne.PutUint16(s[2:], uint16(len(w.Value)))
		copy(s[4:4+MaxKey], w.Key)
		copy(s[4+MaxKey:LogWriteSize], w.Value)
	}
	return b
}

// ParseLogRecord decodes a record read from the log ring buffer. The
// record may be shorter than LogRecordSize as long as it holds its
// nwrites write slots. Keys and values are copied out of b.
func ParseLogRecord(b []byte) (LogRecord, error) {
	payload, err := appendPayloadFromRing(nil, b)
	if err != nil {
		return LogRecord{}, err
	}
	r, err := ParseWALPayload(payload)
	if err != nil {
		return LogRecord{}, err
	}
	r.KtimeNS = binary.NativeEndian.Uint64(b[16:])
	return r, nil
}

// ringSeq is the seq of a ring record that holds at least its header.
func ringSeq(b []byte) uint64 { return binary.NativeEndian.Uint64(b) }

// appendPayloadFromRing converts a ring record straight to its WAL
// payload (seq | txid | nwrites | {op | klen | vlen | key | value}*),
// checking it on the way, without building a LogRecord: this is the
// writer's hot path.
func appendPayloadFromRing(dst, b []byte) ([]byte, error) {
	if len(b) < LogRecordHeaderSize {
		return dst, fmt.Errorf("log record of %d bytes is shorter than its %d-byte header", len(b), LogRecordHeaderSize)
	}
	ne, le := binary.NativeEndian, binary.LittleEndian
	seq := ne.Uint64(b[0:])
	n := int(ne.Uint32(b[24:]))
	if n < 1 || n > MaxWrites {
		return dst, fmt.Errorf("log record seq %d: %d writes (1..%d)", seq, n, MaxWrites)
	}
	if need := LogRecordHeaderSize + n*LogWriteSize; len(b) < need {
		return dst, fmt.Errorf("log record seq %d of %d bytes is too short for its %d writes (%d bytes)", seq, len(b), n, need)
	}
	dst = le.AppendUint64(dst, seq)
	dst = le.AppendUint64(dst, ne.Uint64(b[8:]))
	dst = le.AppendUint32(dst, uint32(n))
	for i := range n {
		s := b[LogRecordHeaderSize+i*LogWriteSize:]
		op, klen, vlen := WriteOp(s[0]), int(s[1]), int(ne.Uint16(s[2:]))
		if op == WriteDel {
			vlen = 0 // a DEL's value slot means nothing; do not log it
		}
		if err := checkWrite(op, klen, vlen); err != nil {
			return dst, fmt.Errorf("log record seq %d: write %d: %w", seq, i, err)
		}
		dst = append(dst, byte(op), byte(klen))
		dst = le.AppendUint16(dst, uint16(vlen))
		dst = append(dst, s[4:4+klen]...)
		dst = append(dst, s[4+MaxKey:4+MaxKey+vlen]...)
	}
	return dst, nil
}

// WAL payload sizes.
const (
	walPayloadHeader = 8 + 8 + 4
	walWriteHeader   = 4
	// maxWALPayload bounds a record's length field: anything longer is
	// corrupt, not merely torn.
	maxWALPayload = walPayloadHeader + MaxWrites*(walWriteHeader+MaxKey+MaxValue)
)

// AppendWALPayload appends r's WAL payload: seq u64 | txid u64 |
// nwrites u32 | {op u8 | klen u8 | vlen u16 | key | value}*, little-endian.
func (r *LogRecord) AppendWALPayload(b []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint64(b, r.Seq)
	b = le.AppendUint64(b, r.TxID)
	b = le.AppendUint32(b, uint32(len(r.Writes)))
	for _, w := range r.Writes {
		b = append(b, byte(w.Op), byte(len(w.Key)))
		b = le.AppendUint16(b, uint16(len(w.Value)))
		b = append(b, w.Key...)
		b = append(b, w.Value...)
	}
	return b
}

// ParseWALPayload decodes one WAL record's payload. Keys and values
// share p's memory.
func ParseWALPayload(p []byte) (LogRecord, error) {
	if len(p) < walPayloadHeader {
		return LogRecord{}, fmt.Errorf("payload of %d bytes is shorter than its %d-byte header", len(p), walPayloadHeader)
	}
	le := binary.LittleEndian
	r := LogRecord{Seq: le.Uint64(p), TxID: le.Uint64(p[8:])}
	n := int(le.Uint32(p[16:]))
	if n < 1 || n > MaxWrites {
		return LogRecord{}, fmt.Errorf("seq %d: %d writes (1..%d)", r.Seq, n, MaxWrites)
	}
	r.Writes = make([]LogWrite, n)
	p = p[walPayloadHeader:]
	for i := range n {
		if len(p) < walWriteHeader {
			return LogRecord{}, fmt.Errorf("seq %d: write %d runs past the payload", r.Seq, i)
		}
		op, klen, vlen := WriteOp(p[0]), int(p[1]), int(le.Uint16(p[2:]))
		if err := checkWrite(op, klen, vlen); err != nil {
			return LogRecord{}, fmt.Errorf("seq %d: write %d: %w", r.Seq, i, err)
		}
		if len(p) < walWriteHeader+klen+vlen {
			return LogRecord{}, fmt.Errorf("seq %d: write %d runs past the payload", r.Seq, i)
		}
		w := &r.Writes[i]
		w.Op = op
		w.Key = p[walWriteHeader : walWriteHeader+klen]
		w.Value = p[walWriteHeader+klen : walWriteHeader+klen+vlen]
		p = p[walWriteHeader+klen+vlen:]
	}
	if len(p) != 0 {
		return LogRecord{}, fmt.Errorf("seq %d: %d stray bytes after the last write", r.Seq, len(p))
	}
	return r, nil
}
