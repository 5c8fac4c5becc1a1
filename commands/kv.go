// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/hexbytes"
	"github.com/bpfsh/bpfsh/bpf/kv"
	"github.com/bpfsh/bpfsh/testrun"
)

// kvCmd is the family of commands that talk to the kv store (bpf/kv): each
// request is crafted, test-run through the loaded xdp_kv program and its
// reply decoded, so what the shell shows is what the program answered.
// Every sub-command is in Subs below (check is declared in kv_check.go,
// serve and bench in kv_live.go).
var kvCmd = &Command{
	Name:  "kv",
	Short: "talk to the in-kernel kv store: get, set, del, transactions, scan, stats, WAL",
	Long: "kv sends requests to the kv store loaded with 'load kv' (the XDP program xdp_kv and its maps under " +
		"<pin-root>/kv/): each sub-command crafts the request as a UDP datagram, test-runs the program on it " +
		"(BPF_PROG_TEST_RUN, as run does) and shows the decoded reply: its status by name (OK, NOT_FOUND, " +
		"CONFLICT, TOO_BIG, ...) and value. A status that means the request failed is an error (exit 1). " +
		"KEY and VALUE are one word each (quote one with spaces: \"a b\") or bytes as 'hex 6162'; keys have " +
		"1 to 64 bytes, values at most 512. 'kv begin' opens a transaction that the following get, set and " +
		"del of this session join, each showing the transaction's read and write sets, until 'kv commit' or " +
		"'kv abort'. '--detail' after any request shows the run behind it: the reply packet layer by layer " +
		"and the map entries it changed. '--name NAME' talks to kv loaded as 'load kv name NAME' ('kv use NAME' " +
		"for the rest of the session). Commits go to the WAL: the session starts a writer with 'load kv' " +
		"(or at its first kv command) and stops it, flushed, at unload or exit; see 'help kv wal'.",
	Example: "kv set greeting hello",
	Subs: []*Command{
		{
			Name:  "get",
			Usage: "KEY [--detail] [--name NAME]",
			Short: "read a key (in the open transaction, if any)",
			Long: "get reads KEY. Without a transaction it reads the committed store; in one it reads the " +
				"transaction's own write of the key first, otherwise the store, and records the version it saw in " +
				"the read set that COMMIT validates. A missing key is status NOT_FOUND, not an error.",
			Example: "kv get greeting",
			Run:     kvRequestCmd(kv.OpGet),
		},
		{
			Name:  "set",
			Usage: "KEY VALUE [--detail] [--name NAME]",
			Short: "write a key: committed at once, or buffered in the open transaction",
			Long: "set writes VALUE under KEY. Without a transaction the write commits on its own (and goes to the " +
				"log ring, then the WAL); in one it is buffered until COMMIT. Over a limit (key 1..64 bytes, value " +
				"0..512) the program answers TOO_BIG and nothing changes.",
			Example: `kv set greeting "hello world"`,
			Run:     kvRequestCmd(kv.OpSet),
		},
		{
			Name:    "del",
			Usage:   "KEY [--detail] [--name NAME]",
			Short:   "delete a key: committed at once, or buffered in the open transaction",
			Long:    "del deletes KEY, on its own (NOT_FOUND when there was no such key, and nothing is logged) or buffered in the open transaction.",
			Example: "kv del greeting",
			Run:     kvRequestCmd(kv.OpDel),
		},
		{
			Name:  "begin",
			Usage: "[--detail] [--name NAME]",
			Short: "open a transaction that the session's next get, set and del join",
			Long: "begin asks the program for a transaction id and keeps it in the session: get, set and del carry " +
				"it until commit or abort. A transaction idle longer than kv_txn_timeout_ns (5 s unless set at load: " +
				"load kv set kv_txn_timeout_ns=60000000000) is removed by the program, and its next request answers NO_TXN.",
			Example: "kv begin",
			Run:     kvRequestCmd(kv.OpBegin),
		},
		{
			Name:  "commit",
			Usage: "[--detail] [--name NAME]",
			Short: "commit the open transaction (serializable; CONFLICT aborts it)",
			Long: "commit validates the versions the transaction read against the store and installs its writes " +
				"atomically. If another commit changed a key it read, the answer is CONFLICT: the transaction is " +
				"aborted, nothing of it stays, and the command fails (exit 1). LOG_FULL, BUSY and STORE_FULL leave " +
				"the transaction open to retry or abort.",
			Example: "kv commit",
			Run:     kvRequestCmd(kv.OpCommit),
		},
		{
			Name:    "abort",
			Usage:   "[--detail] [--name NAME]",
			Short:   "drop the open transaction and its buffered writes",
			Long:    "abort ends the session's transaction; nothing it buffered is installed.",
			Example: "kv abort",
			Run:     kvRequestCmd(kv.OpAbort),
		},
		{
			Name:  "scan",
			Usage: "[PREFIX] [--detail] [--name NAME]",
			Short: "list committed keys that start with PREFIX (one reply: at most 8)",
			Long: "scan asks the program for the committed keys that start with PREFIX (all keys without one), in the " +
				"hash map's order, as many as one reply holds (8 entries, 1200 bytes of entries); it says when more " +
				"matched. It reads the committed store, outside any transaction. 'map dump kv/store' shows every key.",
			Example: "kv scan user:",
			Run:     kvRequestCmd(kv.OpScan),
		},
		{
			Name:    "stats",
			Usage:   "[--name NAME]",
			Short:   "the program's counters, summed over the CPUs",
			Long:    "stats reads the per-CPU counters of kv/stats and shows each summed over the CPUs, by name: requests by op, replies by status, commits, aborts by reason, passed and dropped packets (bpf/kv/PROTOCOL.md, Counters).",
			Example: "kv stats",
			Run:     runKVStats,
		},
		{
			Name:  "sync",
			Usage: "[--name NAME]",
			Short: "wait until every commit so far is on disk in the WAL; show the durable seq",
			Long: "sync returns once everything committed before it (up to the store's commit_seq) is written and " +
				"fsynced in the WAL, and shows that seq: a commit with a seq up to it survives a crash of the shell " +
				"or the machine. It uses the session's WAL writer, or waits for another bpfsh's writer to write the WAL.",
			Example: "kv sync",
			Run:     runKVSync,
		},
		{
			Name:  "checkpoint",
			Usage: "[--name NAME]",
			Short: "snapshot the store next to the WAL and drop the WAL records it covers",
			Long: "checkpoint writes a snapshot of the store (with its checksum and the seq it covers) next to the " +
				"WAL, atomically, then rewrites the WAL without the records the snapshot holds, so the WAL stays " +
				"small; load replays the snapshot and then the records after it. Commits go on meanwhile. It needs " +
				"the WAL writer to run in this shell.",
			Example: "kv checkpoint",
			Run:     runKVCheckpoint,
		},
		{
			Name:  "wal",
			Usage: "[status | start [FILE] | stop] [--name NAME]",
			Short: "the WAL writer: show it, start it (on another FILE), stop it",
			Long: "Every commit is reserved in the log ring buffer before it becomes visible; the WAL writer drains the " +
				"ring into an append-only file with a checksum per record and one fsync per group of records. " +
				"The WAL is <state-dir>/kv/<pin-root hash>-NAME.wal; load replays it into the fresh maps (cutting a " +
				"torn tail) and starts the writer, unload flushes and stops it and keeps the file. 'kv wal' shows " +
				"the writer and the WAL. 'kv wal stop' stops it: commits then fill the ring (4 MiB, about 450 " +
				"commits) until the program answers LOG_FULL. 'kv wal start' starts it again; 'kv wal start FILE' " +
				"writes to FILE instead, which load does not replay (copy it to the WAL's path to restore from it).",
			Example: "kv wal status",
			Run:     runKVWAL,
		},
		{
			Name:    "use",
			Usage:   "[NAME]",
			Short:   "make kv commands talk to kv loaded as NAME for the rest of the session",
			Long:    "use sets the NAME the kv commands use when --name is not given ('kv' to begin with); without NAME it shows the one in use.",
			Example: "kv use kv2",
			Run:     runKVUse,
		},
		kvCheckCmd,
		kvServeCmd,
		kvBenchCmd,
	},
}

func init() { onLoad(kvLoadHook) }

// kvRequestCmd returns the Run of the request sub-command for op.
func kvRequestCmd(op kv.Op) func(*Session, []string) (Result, error) {
	return func(s *Session, args []string) (Result, error) {
		name, detail, rest, err := kvFlags(s, args)
		if err != nil {
			return nil, err
		}
		req, err := kvParseRequest(op, rest)
		if err != nil {
			return nil, err
		}
		t, err := openKV(s, name)
		if err != nil {
			return nil, err
		}
		defer t.close()
		note := t.ensureWriter(s)
		return t.request(s, req, detail, note)
	}
}

// kvParseRequest reads a request's words: KEY for get and del, KEY VALUE
// for set, an optional PREFIX for scan, nothing for the rest.
func kvParseRequest(op kv.Op, words []string) (*kv.Message, error) {
	cmd := "kv " + strings.ToLower(op.String())
	req := &kv.Message{Op: op}
	var err error
	switch op {
	case kv.OpGet, kv.OpDel:
		if len(words) == 0 {
			return nil, Usagef("%s needs a KEY", cmd)
		}
		req.Key, err = kvBytes(cmd, "KEY", words)
	case kv.OpScan:
		if len(words) > 0 {
			req.Key, err = kvBytes(cmd, "PREFIX", words)
		}
	case kv.OpSet:
		var n int
		req.Key, n, err = kvKeyWord(cmd, words)
		if err != nil {
			return nil, err
		}
		if len(words) == n {
			return nil, Usagef("%s needs a VALUE after the key", cmd)
		}
		req.Value, err = kvBytes(cmd, "VALUE", words[n:])
		if err == nil && len(req.Value) > 0xffff {
			err = Usagef("%s: a value of %d bytes does not fit the request's 16-bit length (the store takes at most %d)", cmd, len(req.Value), kv.MaxValue)
		}
	default:
		if len(words) > 0 {
			return nil, Usagef("%s takes no arguments, not %q", cmd, words[0])
		}
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

// kvKeyWord reads the key of set: one word, or hex and one word of hex
// digits; it returns how many words it took.
func kvKeyWord(cmd string, words []string) ([]byte, int, error) {
	if len(words) == 0 {
		return nil, 0, Usagef("%s needs a KEY and a VALUE", cmd)
	}
	if words[0] == "hex" {
		if len(words) < 2 {
			return nil, 0, Usagef("%s: hex needs the key's bytes after it, e.g. hex 6b31", cmd)
		}
		b, err := kvHex(cmd, "KEY", words[1:2])
		return b, 2, err
	}
	return []byte(words[0]), 1, nil
}

// kvBytes reads the rest of the words as one key or value: a single word
// (the shell has removed its quotes), or hex followed by hex digits.
func kvBytes(cmd, what string, words []string) ([]byte, error) {
	if words[0] == "hex" {
		return kvHex(cmd, what, words[1:])
	}
	if len(words) > 1 {
		return nil, Usagef("%s: %s is one word; quote it to keep spaces (\"%s\") or give bytes as hex", cmd, what, strings.Join(words, " "))
	}
	return []byte(words[0]), nil
}

// kvHex reads the words after "hex" (see package hexbytes): hex 6162,
// hex 61 62, hex 0x61:62.
func kvHex(cmd, what string, words []string) ([]byte, error) {
	b, err := hexbytes.Parse(words)
	if err != nil {
		return nil, Usagef("%s: %s hex: %v", cmd, what, err)
	}
	return b, nil
}

// kvShow shows key or value bytes so that they can be typed back: "text"
// when they are printable text without a double quote, hex 0a0b otherwise.
func kvShow(b []byte) string {
	if kvPrintable(b) {
		return `"` + string(b) + `"`
	}
	return "hex " + hex.EncodeToString(b)
}

func kvPrintable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if r == '"' || !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// kvBytesJSON is a key or value in JSON: its bytes as hex, and as text
// when they are printable.
type kvBytesJSON struct {
	Text *string `json:"text,omitempty"`
	Hex  string  `json:"hex"`
}

func kvJSONBytes(b []byte) *kvBytesJSON {
	j := &kvBytesJSON{Hex: hex.EncodeToString(b)}
	if utf8.Valid(b) {
		s := string(b)
		j.Text = &s
	}
	return j
}

// kvReplyJSON is a request's result in JSON (-j).
type kvReplyJSON struct {
	Op      string         `json:"op"`
	Status  string         `json:"status"`
	Key     *kvBytesJSON   `json:"key,omitempty"`
	Value   *kvBytesJSON   `json:"value,omitempty"`
	Entries []kvEntryJSON  `json:"entries,omitempty"`
	More    bool           `json:"more,omitempty"`
	Txn     *kvTxnJSON     `json:"txn,omitempty"`
	Note    string         `json:"note,omitempty"`
	Run     map[string]any `json:"run,omitempty"`
}

// kvEntryJSON is one entry of a SCAN reply.
type kvEntryJSON struct {
	Key   *kvBytesJSON `json:"key"`
	Value *kvBytesJSON `json:"value"`
}

// kvTxnJSON is the session's transaction after a request.
type kvTxnJSON struct {
	ID     uint64 `json:"id"`
	State  string `json:"state"` // open, committed, aborted, gone
	Writes int    `json:"writes"`
	Reads  int    `json:"reads"`
}

func (j *kvTxnJSON) String() string {
	sets := plural(j.Writes, "write") + ", " + plural(j.Reads, "read")
	switch j.State {
	case "open":
		return fmt.Sprintf("%d (%s)", j.ID, sets)
	case "committed":
		return fmt.Sprintf("%d committed (%s)", j.ID, sets)
	case "gone":
		return fmt.Sprintf("%d is gone: expired (idle past kv_txn_timeout_ns) or ended", j.ID)
	}
	return fmt.Sprintf("%d %s", j.ID, j.State)
}

// plural is "1 write" or "2 writes".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// txn reads transaction id's read and write sets from the txns map.
func (t *kvTarget) txn(id uint64) *kvTxnJSON {
	st, err := t.h.Txn(id)
	if err != nil {
		return &kvTxnJSON{ID: id, State: "gone"}
	}
	return &kvTxnJSON{ID: id, State: "open", Writes: len(st.Writes), Reads: len(st.Reads)}
}

// request sends req (joining the session's transaction where the op
// takes one) and returns the reply as a run whose view is the decoded
// reply, so that expect retval and expect packet check it as they check
// run. Statuses that mean the request failed are errors.
func (t *kvTarget) request(s *Session, req *kv.Message, detail bool, note string) (Result, error) {
	ld := t.ld
	cmd := "kv " + strings.ToLower(req.Op.String())
	var before *kvTxnJSON
	switch req.Op {
	case kv.OpGet, kv.OpSet, kv.OpDel:
		req.TxID = ld.txid
	case kv.OpBegin:
		if ld.txid != 0 {
			return nil, fmt.Errorf("%s: transaction %d is open in this session; kv commit or kv abort it first", cmd, ld.txid)
		}
	case kv.OpCommit, kv.OpAbort:
		if ld.txid == 0 {
			return nil, fmt.Errorf("%s: no transaction is open in this session; kv begin opens one", cmd)
		}
		req.TxID = ld.txid
		before = t.txn(ld.txid)
	}
	o, reply, err := t.exchange(s, req, detail)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	status := reply.Status()
	j := &kvReplyJSON{Op: req.Op.String(), Status: status.String(), Note: note}
	if len(reply.Key) > 0 || req.Op == kv.OpGet || req.Op == kv.OpSet || req.Op == kv.OpDel {
		j.Key = kvJSONBytes(req.Key)
	}
	var lines [][2]string
	add := func(name, value string) { lines = append(lines, [2]string{name, value}) }
	add("status", status.String())

	// What the reply does to the session's transaction.
	txid := ld.txid
	switch {
	case req.Op == kv.OpBegin && status == kv.StatusOK:
		ld.txid = reply.TxID
		txid = reply.TxID
	case req.Op == kv.OpCommit && status == kv.StatusOK:
		ld.txid = 0
		before.State = "committed"
		j.Txn = before
	case req.Op == kv.OpAbort && status == kv.StatusOK:
		ld.txid = 0
		j.Txn = &kvTxnJSON{ID: txid, State: "aborted", Writes: before.Writes, Reads: before.Reads}
	case txid != 0 && req.Op != kv.OpScan &&
		(status == kv.StatusNoTxn || status == kv.StatusTxnFull || status == kv.StatusConflict):
		// The program removed the transaction.
		ld.txid = 0
	}

	switch {
	case req.Op == kv.OpGet && status == kv.StatusOK:
		add("value", kvShow(reply.Value))
		j.Value = kvJSONBytes(reply.Value)
	case req.Op == kv.OpScan && status == kv.StatusOK:
		entries, err := kv.ScanEntries(reply.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		add("entries", strconv.Itoa(len(entries)))
		for _, e := range entries {
			add("", kvShow(e.Key)+" = "+kvShow(e.Value))
			j.Entries = append(j.Entries, kvEntryJSON{Key: kvJSONBytes(e.Key), Value: kvJSONBytes(e.Value)})
		}
		if reply.ScanMore() {
			j.More = true
			add("more", "more keys match than one reply holds (8 entries, 1200 bytes); give a longer prefix")
		}
	}
	if err := kvStatusErr(cmd, req, reply, txid); err != nil {
		if detail {
			return nil, &kvError{msg: err.Error(), detail: FormatOutcome(o)}
		}
		return nil, err
	}
	if j.Txn == nil && ld.txid != 0 && req.Op != kv.OpScan {
		j.Txn = t.txn(ld.txid)
	}
	if j.Txn != nil {
		add("txn", j.Txn.String())
	}
	if note != "" {
		add("note", note)
	}
	body := kvLines(lines)
	if detail {
		body += "\n" + FormatOutcome(o)
		j.Run = o.JSON()
	}
	return &RunResult{Outcome: o, View: &Text{Body: body, JSON: j}}, nil
}

// kvLines aligns "name: value" lines; a line without a name continues
// the one above, indented.
func kvLines(lines [][2]string) string {
	width := 0
	for _, l := range lines {
		width = max(width, len(l[0]))
	}
	var b strings.Builder
	for _, l := range lines {
		label := l[0] + ":"
		if l[0] == "" {
			label = ""
		}
		fmt.Fprintf(&b, "%-*s  %s\n", width+1, label, l[1])
	}
	return b.String()
}

// kvError is a failed request whose run is shown below its line
// (--detail).
type kvError struct{ msg, detail string }

func (e *kvError) Error() string  { return e.msg }
func (e *kvError) Detail() string { return e.detail }

// kvStatusErr is the one-line error for a reply whose status means the
// request failed, saying what happened to the transaction and what to do;
// nil for OK, and for NOT_FOUND (an answer, not a failure).
func kvStatusErr(cmd string, req, reply *kv.Message, txid uint64) error {
	st := reply.Status()
	open := ""
	if txid != 0 {
		open = fmt.Sprintf("; transaction %d stays open (retry, or kv abort)", txid)
	}
	switch st {
	case kv.StatusOK, kv.StatusNotFound:
		return nil
	case kv.StatusConflict:
		return fmt.Errorf("%s: CONFLICT: transaction %d read a key that another commit changed since; it was aborted and nothing of it was installed; kv begin and try again", cmd, txid)
	case kv.StatusTooBig:
		return fmt.Errorf("%s: TOO_BIG: key of %d bytes, value of %d; keys have 1 to %d bytes and values at most %d; nothing changed", cmd, len(req.Key), len(req.Value), kv.MaxKey, kv.MaxValue)
	case kv.StatusBadRequest:
		why := "the program refused the request"
		if req.Op != kv.OpScan && len(req.Key) == 0 && req.Op != kv.OpBegin && req.Op != kv.OpCommit && req.Op != kv.OpAbort {
			why = fmt.Sprintf("an empty key; keys have 1 to %d bytes", kv.MaxKey)
		}
		return fmt.Errorf("%s: BAD_REQUEST: %s; nothing changed", cmd, why)
	case kv.StatusNoTxn:
		return fmt.Errorf("%s: NO_TXN: transaction %d is gone: it was idle longer than kv_txn_timeout_ns (5 s unless set at load) or has ended; kv begin opens another", cmd, txid)
	case kv.StatusTxnFull:
		return fmt.Errorf("%s: TXN_FULL: a transaction writes and reads at most %d distinct keys each; transaction %d was aborted", cmd, kv.MaxWrites, txid)
	case kv.StatusLogFull:
		return fmt.Errorf("%s: LOG_FULL: the log ring buffer is full, so nothing was committed%s; no WAL writer drains it: 'kv wal start' starts one here, 'kv wal' shows why none runs", cmd, open)
	case kv.StatusBusy:
		return fmt.Errorf("%s: BUSY: the commit lock or the transaction was taken at that instant, the transaction table is full, or a GET's key stayed in the middle of a commit's write; nothing happened%s", cmd, open)
	case kv.StatusStoreFull:
		return fmt.Errorf("%s: STORE_FULL: the store map has no room for the new keys; nothing was installed%s", cmd, open)
	}
	return fmt.Errorf("%s: the program answered status %d, which bpfsh does not know", cmd, uint8(st))
}

// exchange sends req to the store's program with BPF_PROG_TEST_RUN, as
// run does (detail adds run's map diff and trace), and checks and decodes
// the reply.
func (t *kvTarget) exchange(s *Session, req *kv.Message, detail bool) (*testrun.Outcome, *kv.Message, error) {
	t.st.reqid++
	req.ReqID = t.st.reqid
	opts := testrun.Options{Program: t.h.Prog, Data: t.addr.Frame(req.Marshal()), NoTrace: !detail, NoMaps: !detail}
	if detail {
		s.AtExit("trace", testrun.CloseTrace)
	}
	o, err := testrun.Run(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("test-run %s/%s: %w", t.name, kv.ProgramName, err)
	}
	// scratch is one request's working memory, not state: its diff is
	// kilobytes of noise.
	maps := o.Maps[:0]
	for _, m := range o.Maps {
		if m.Map != "scratch" {
			maps = append(maps, m)
		}
	}
	o.Maps = maps
	const xdpTX = 3
	if o.Retval != xdpTX {
		return o, nil, fmt.Errorf("%s/%s answered %s, not XDP_TX: it did not take the datagram to UDP port %d for a kv request", t.name, kv.ProgramName, o.RetvalName, t.addr.DstPort)
	}
	reply, err := kv.CheckReply(t.addr, o.DataOut)
	if err != nil {
		return o, nil, err
	}
	if reply.ReqID != req.ReqID || reply.Op != req.Op {
		return o, nil, fmt.Errorf("the reply to %s request %d is for %s request %d", req.Op, req.ReqID, reply.Op, reply.ReqID)
	}
	return o, reply, nil
}

func runKVStats(s *Session, args []string) (Result, error) {
	name, _, rest, err := kvFlags(s, args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("kv stats takes no arguments, not %q", rest[0])
	}
	t, err := openKV(s, name)
	if err != nil {
		return nil, err
	}
	defer t.close()
	stats, err := t.h.ReadStats()
	if err != nil {
		return nil, fmt.Errorf("kv stats: %w", err)
	}
	return counterTable(stats), nil
}

func runKVUse(s *Session, args []string) (Result, error) {
	st := kvState(s)
	switch len(args) {
	case 0:
		return &Message{Text: fmt.Sprintf("kv commands use %s (%s/%s)", st.name, s.PinRoot, st.name), Data: map[string]string{"name": st.name}}, nil
	case 1:
	default:
		return nil, Usagef("kv use takes one NAME")
	}
	if err := bpf.ValidName(args[0]); err != nil {
		return nil, Usagef("kv use: %v", err)
	}
	st.name = args[0]
	return &Message{Text: fmt.Sprintf("kv commands now use %s (%s/%s)", st.name, s.PinRoot, st.name), Data: map[string]string{"name": st.name}}, nil
}
