// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The WAL file (PROTOCOL.md):
//
//	file    = header record*
//	header  = "BPFSHKV1" | pin-root hash (8 bytes)
//	record  = len u32 | crc32c u32 (of payload) | payload
//	payload = seq u64 | txid u64 | nwrites u32 | {op u8 | klen u8 | vlen u16 | key | value}*
//
// all little-endian. Records only ever get appended; a checkpoint
// replaces the file by one that keeps the records after the snapshot.
const (
	walMagic = "BPFSHKV1"
	// WALHeaderSize is the size of the WAL's header: magic and pin-root hash.
	WALHeaderSize = 16
	// walFrameHeader is the len and crc32c in front of each payload.
	walFrameHeader = 8
	// minWALPayload is the smallest payload: one DEL of a 1-byte key.
	minWALPayload = walPayloadHeader + walWriteHeader + 1
)

// castagnoli is the CRC32C table the WAL and checkpoints use.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrWrongPinRoot means a WAL or checkpoint was written for another pin
// root: replaying it would put another store's data into this one.
var ErrWrongPinRoot = errors.New("belongs to another pin root")

// ErrWALBusy means another WAL writer (in this or another process)
// holds the WAL.
var ErrWALBusy = errors.New("in use by another WAL writer")

// PinRootHash identifies a pin root in WAL and checkpoint headers and in
// their file names: the first 8 bytes of the SHA-256 of the cleaned path
// (the same hash that names load manifests).
func PinRootHash(pinRoot string) [8]byte {
	sum := sha256.Sum256([]byte(filepath.Clean(pinRoot)))
	return [8]byte(sum[:8])
}

// WALPath is where the WAL of the kv store loaded as name under pinRoot
// lives when no path is given: <stateDir>/kv/<pin-root hash>-<name>.wal.
func WALPath(stateDir, pinRoot, name string) string {
	h := PinRootHash(pinRoot)
	return filepath.Join(stateDir, "kv", hex.EncodeToString(h[:])+"-"+name+".wal")
}

// walHeader is the header of a WAL for the pin root with hash h.
func walHeader(h [8]byte) []byte {
	return append([]byte(walMagic), h[:]...)
}

// checkHeader says whether hdr is a WAL header for pin root hash h.
func checkHeader(path string, hdr []byte, magic string, h [8]byte) error {
	if len(hdr) < len(magic)+8 || string(hdr[:len(magic)]) != magic {
		return fmt.Errorf("%s is not a bpfsh kv file (it does not start with %q)", path, magic)
	}
	if got := [8]byte(hdr[len(magic):]); got != h {
		return fmt.Errorf("%s %w (%x; this pin root is %x): use the --pin-root it was written for, or another path", path, ErrWrongPinRoot, got[:], h[:])
	}
	return nil
}

// appendFrame appends the framed WAL record of payload.
func appendFrame(dst, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...)
}

// AppendWALRecord appends r as one framed WAL record (len, crc32c, payload).
func AppendWALRecord(dst []byte, r *LogRecord) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, walFrameHeader)...)
	dst = r.AppendWALPayload(dst)
	sealFrame(dst[start:])
	return dst
}

// sealFrame fills in the len and crc of a frame whose payload follows
// its 8 reserved bytes.
func sealFrame(frame []byte) {
	payload := frame[walFrameHeader:]
	binary.LittleEndian.PutUint32(frame, uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(payload, castagnoli))
}

// TornTail is the bad end of a WAL: what a crash in the middle of a
// write (or damage) left there. It is cut, never applied.
type TornTail struct {
	Offset      int64  `json:"offset"`        // where the first bad record begins
	Cut         int64  `json:"cut_bytes"`     // bytes from Offset to the end of the file
	LastGoodSeq uint64 `json:"last_good_seq"` // seq of the last record kept (0: none)
	Reason      string `json:"reason"`
}

func (t *TornTail) String() string {
	return fmt.Sprintf("torn tail at offset %d (%s): %d bytes cut, last good seq %d", t.Offset, t.Reason, t.Cut, t.LastGoodSeq)
}

// WALInfo is what reading a WAL found.
type WALInfo struct {
	Path     string    `json:"path"`
	Size     int64     `json:"size"`    // bytes in the file when read
	End      int64     `json:"end"`     // end of the last good record
	Records  int       `json:"records"` // good records
	FirstSeq uint64    `json:"first_seq"`
	LastSeq  uint64    `json:"last_seq"`
	Torn     *TornTail `json:"torn,omitempty"`
}

// ReadWAL reads the WAL at path, checking that it belongs to the pin
// root with hash h, and calls fn with each good record in order (the
// record's memory is reused after fn returns). It stops at a torn tail
// and reports it in the result, without changing the file.
func ReadWAL(path string, h [8]byte, fn func(*LogRecord) error) (WALInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return WALInfo{Path: path}, fmt.Errorf("read WAL: %w", err)
	}
	defer f.Close()
	return scanWAL(f, path, h, func(_ int64, r *LogRecord, _ []byte) error {
		if fn == nil {
			return nil
		}
		return fn(r)
	})
}

// scanWAL reads f from its start: the header (which must be for h), then
// each record, calling fn with the record, its offset and its framed
// bytes. It stops at the first record that is short, too long, fails its
// checksum, does not decode, or whose seq does not increase, and reports
// it as the torn tail.
func scanWAL(f *os.File, path string, h [8]byte, fn func(off int64, r *LogRecord, frame []byte) error) (WALInfo, error) {
	info := WALInfo{Path: path}
	st, err := f.Stat()
	if err != nil {
		return info, fmt.Errorf("read WAL %s: %w", path, err)
	}
	info.Size = st.Size()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return info, fmt.Errorf("read WAL %s: %w", path, err)
	}
	rd := bufio.NewReaderSize(f, 256<<10)
	hdr := make([]byte, WALHeaderSize)
	if n, err := io.ReadFull(rd, hdr); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return info, fmt.Errorf("%s is not a bpfsh kv WAL: %d bytes, shorter than the %d-byte header", path, n, WALHeaderSize)
		}
		return info, fmt.Errorf("read WAL %s: %w", path, err)
	}
	if err := checkHeader(path, hdr, walMagic, h); err != nil {
		return info, err
	}
	off := int64(WALHeaderSize)
	info.End = off
	frame := make([]byte, walFrameHeader+maxWALPayload)
	torn := func(reason string, args ...any) {
		info.Torn = &TornTail{Offset: off, Cut: info.Size - off, LastGoodSeq: info.LastSeq, Reason: fmt.Sprintf(reason, args...)}
	}
	for {
		n, err := io.ReadFull(rd, frame[:walFrameHeader])
		if err == io.EOF {
			return info, nil
		}
		if err == io.ErrUnexpectedEOF {
			torn("a %d-byte record header where 8 are needed", n)
			return info, nil
		}
		if err != nil {
			return info, fmt.Errorf("read WAL %s at offset %d: %w", path, off, err)
		}
		plen := int(binary.LittleEndian.Uint32(frame))
		sum := binary.LittleEndian.Uint32(frame[4:])
		if plen < minWALPayload || plen > maxWALPayload {
			torn("record length %d out of range %d..%d", plen, minWALPayload, maxWALPayload)
			return info, nil
		}
		payload := frame[walFrameHeader : walFrameHeader+plen]
		if n, err := io.ReadFull(rd, payload); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				torn("a record of %d bytes with only %d in the file", plen, n)
				return info, nil
			}
			return info, fmt.Errorf("read WAL %s at offset %d: %w", path, off, err)
		}
		if crc32.Checksum(payload, castagnoli) != sum {
			torn("checksum mismatch")
			return info, nil
		}
		r, err := ParseWALPayload(payload)
		if err != nil {
			torn("bad record: %v", err)
			return info, nil
		}
		if info.Records > 0 && r.Seq <= info.LastSeq {
			torn("seq %d after seq %d", r.Seq, info.LastSeq)
			return info, nil
		}
		if fn != nil {
			if err := fn(off, &r, frame[:walFrameHeader+plen]); err != nil {
				return info, err
			}
		}
		if info.Records == 0 {
			info.FirstSeq = r.Seq
		}
		info.Records++
		info.LastSeq = r.Seq
		off += int64(walFrameHeader + plen)
		info.End = off
	}
}

// cutTail truncates f to info.End and makes that durable.
func cutTail(f *os.File, info *WALInfo) error {
	if err := f.Truncate(info.End); err != nil {
		return fmt.Errorf("cut torn tail of WAL %s at offset %d: %w", info.Path, info.End, err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("cut torn tail of WAL %s: fsync: %w", info.Path, err)
	}
	return nil
}

// createFile atomically puts a file holding data at path: a temporary
// file is written and fsynced, renamed over path, and the directory is
// fsynced, so a crash leaves either the old file or the whole new one.
func createFile(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	return commitTemp(f, path)
}

// commitTemp fsyncs and closes f (path+".tmp"), renames it over path and
// fsyncs the directory.
func commitTemp(f *os.File, path string) error {
	tmp := f.Name()
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory, making renames and creations in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// lockWAL takes the exclusive lock that keeps two writers (or a writer
// and a replay) off one WAL: flock on path+".lock", which holds the
// holder's pid for the error message. The lock goes with the process, so
// a killed writer never leaves it behind.
func lockWAL(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("WAL directory: %w", err)
	}
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock WAL %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := "another process"
			if b, _ := io.ReadAll(io.LimitReader(f, 32)); len(b) > 0 {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					who = "process " + strconv.Itoa(pid)
					if pid == os.Getpid() {
						who = "this process"
					}
				}
			}
			return nil, fmt.Errorf("WAL %s is %w (%s): stop that writer first (unload kv, or quit the shell that runs it)", path, ErrWALBusy, who)
		}
		return nil, fmt.Errorf("lock WAL %s: %w", path, err)
	}
	// Say who holds it; best effort, the lock itself is what counts.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// unlockWAL releases a lock taken by lockWAL.
func unlockWAL(f *os.File) {
	if f != nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
}

// openWAL opens the WAL at path for the pin root with hash h, creating
// it (header only) when it does not exist or is empty, and cutting a torn
// tail. The caller holds the WAL's lock.
func openWAL(path string, h [8]byte) (*os.File, WALInfo, error) {
	// Left by a crash in the middle of a rewrite or a checkpoint.
	os.Remove(path + ".tmp")
	os.Remove(CheckpointPath(path) + ".tmp")
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && st.Size() == 0) {
		if err := createFile(path, walHeader(h)); err != nil {
			return nil, WALInfo{Path: path}, fmt.Errorf("create WAL %s: %w", path, err)
		}
	} else if err != nil {
		return nil, WALInfo{Path: path}, fmt.Errorf("open WAL: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, WALInfo{Path: path}, fmt.Errorf("open WAL: %w", err)
	}
	info, err := scanWAL(f, path, h, nil)
	if err != nil {
		f.Close()
		return nil, info, err
	}
	if info.Torn != nil {
		if err := cutTail(f, &info); err != nil {
			f.Close()
			return nil, info, err
		}
	}
	return f, info, nil
}
