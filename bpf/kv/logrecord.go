package kv

import (
	"encoding/binary"
	"fmt"
)

// WriteOp is a write's op in a write set or log record (kv_log_write.op).
type WriteOp uint8

// The write ops.
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

// Sizes of the log record (PROTOCOL.md "Log records").
const (
	logWriteSize    = 4 + MaxKey + MaxValue // 580
	logHeaderSize   = 32
	LogRecordSize   = logHeaderSize + MaxWrites*logWriteSize // 9312
	logNWritesAtOff = 24
)

// LogRecord is one commit as the program logs it to the ring buffer.
type LogRecord struct {
	Seq     uint64 // commit_seq of the commit, strictly increasing
	TxID    uint64 // 0 for an auto-committed SET or DEL
	KtimeNs uint64 // bpf_ktime_get_ns() at commit
	Writes  []LogWrite
}

// LogWrite is one installed write.
type LogWrite struct {
	Op    WriteOp
	Key   []byte
	Value []byte // SET only
}

// DecodeLogRecord decodes a ring buffer sample (struct kv_log_record,
// host byte order). Only the first nwrites writes are read, so a sample
// cut after them decodes too.
func DecodeLogRecord(b []byte) (*LogRecord, error) {
	if len(b) < logHeaderSize {
		return nil, fmt.Errorf("kv log record of %d bytes is shorter than its %d-byte header", len(b), logHeaderSize)
	}
	ne := binary.NativeEndian
	r := &LogRecord{Seq: ne.Uint64(b[0:]), TxID: ne.Uint64(b[8:]), KtimeNs: ne.Uint64(b[16:])}
	n := int(ne.Uint32(b[logNWritesAtOff:]))
	if n < 1 || n > MaxWrites {
		return nil, fmt.Errorf("kv log record %d says %d writes; a record has 1 to %d", r.Seq, n, MaxWrites)
	}
	if len(b) < logHeaderSize+n*logWriteSize {
		return nil, fmt.Errorf("kv log record %d of %d bytes cannot hold its %d writes", r.Seq, len(b), n)
	}
	for i := range n {
		w := b[logHeaderSize+i*logWriteSize:]
		op, klen, vlen := WriteOp(w[0]), int(w[1]), int(ne.Uint16(w[2:]))
		if (op != WriteSet && op != WriteDel) || klen < 1 || klen > MaxKey || vlen > MaxValue || (op == WriteDel && vlen != 0) {
			return nil, fmt.Errorf("kv log record %d, write %d: op %d, key %d bytes, value %d bytes is not a valid write", r.Seq, i, op, klen, vlen)
		}
		r.Writes = append(r.Writes, LogWrite{
			Op:    op,
			Key:   append([]byte(nil), w[4:4+klen]...),
			Value: append([]byte{}, w[4+MaxKey:4+MaxKey+vlen]...),
		})
	}
	return r, nil
}
