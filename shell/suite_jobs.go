// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/bpfsh/bpfsh/commands"
)

// Suites in parallel
//
// A suite runs in its file's directory (see runSuite), and the working
// directory belongs to the process: suites cannot run side by side in one
// process. With --jobs N, bpfsh test starts up to N copies of itself, one
// per suite file, each running that one suite as a worker: it writes the
// suite's result as JSON to a file the parent names, and prints only what
// -v asks for. The parent prints each suite's output, its failures and its
// line in file order as they come in, adds up the counts and writes the
// JUnit report from the same results, so the output and the report are a
// serial run's.

// workerFlag is the hidden option that makes bpfsh test a worker.
const workerFlag = "--worker-result"

// suiteJSON is a suiteResult as a worker hands it to its parent.
type suiteJSON struct {
	File      string     `json:"file"`
	ElapsedNS int64      `json:"elapsed_ns"`
	Cases     []caseJSON `json:"cases"`
}

type caseJSON struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Piece  int    `json:"piece,omitempty"`
	Text   string `json:"text"`
	Err    string `json:"err,omitempty"`
	Failed bool   `json:"failed,omitempty"`
	Detail string `json:"detail,omitempty"`
	Expect bool   `json:"expect,omitempty"`
}

// workerError is a failure as a worker reported it: its message and its
// detail (a layer diff), as the parent prints and reports them.
type workerError struct{ msg, detail string }

func (e *workerError) Error() string  { return e.msg }
func (e *workerError) Detail() string { return e.detail }

func toJSON(r *suiteResult) suiteJSON {
	j := suiteJSON{File: r.file, ElapsedNS: r.elapsed.Nanoseconds()}
	for _, c := range r.cases {
		cj := caseJSON{File: c.at.file, Line: c.at.line, Piece: c.at.piece, Text: c.text, Expect: c.expect}
		if c.err != nil {
			cj.Failed, cj.Err, cj.Detail = true, c.err.Error(), commands.DetailOf(c.err)
		}
		j.Cases = append(j.Cases, cj)
	}
	return j
}

func fromJSON(j suiteJSON) *suiteResult {
	r := &suiteResult{file: j.File, elapsed: time.Duration(j.ElapsedNS)}
	for _, c := range j.Cases {
		sc := suiteCase{at: scriptLine{file: c.File, line: c.Line, piece: c.Piece}, text: c.Text, expect: c.Expect}
		if c.Failed {
			sc.err = &workerError{msg: c.Err, detail: c.Detail}
		}
		r.cases = append(r.cases, sc)
	}
	return r
}

// runWorker runs the one suite of a worker and writes its result.
func (sh *Shell) runWorker(files []string, o testOptions) (int, error) {
	if len(files) != 1 {
		return ExitUsage, fmt.Errorf("test: a worker runs one suite, got %d", len(files))
	}
	r := sh.runSuite(files[0], o.verbose)
	data, err := json.Marshal(toJSON(r))
	if err != nil {
		return ExitFailed, err
	}
	if err := os.WriteFile(o.worker, data, 0o600); err != nil {
		return ExitFailed, fmt.Errorf("test: write the suite's result: %w", err)
	}
	return ExitOK, nil
}

// suitesInOrder returns a function that gives each suite's result and the
// output it printed (with -v), in the order of files: run here one after
// another, or with o.jobs > 1 by up to o.jobs workers at once. It returns
// nil when interrupted.
func (sh *Shell) suitesInOrder(files []string, o testOptions) func() (*suiteResult, []byte) {
	i := 0
	if o.jobs <= 1 || len(files) < 2 {
		return func() (*suiteResult, []byte) {
			if i > 0 && sh.base.Err() != nil {
				return nil, nil
			}
			r := sh.runSuite(files[i], o.verbose)
			i++
			return r, nil
		}
	}
	type done struct {
		r   *suiteResult
		out []byte
	}
	results := make([]chan done, len(files))
	for k := range results {
		results[k] = make(chan done, 1)
	}
	ctx, cancel := context.WithCancel(sh.base)
	slots := make(chan struct{}, o.jobs)
	go func() {
		for k, f := range files {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				r, out := sh.runInWorker(ctx, f, o)
				<-slots
				results[k] <- done{r, out}
			}()
		}
	}()
	return func() (*suiteResult, []byte) {
		if i >= len(files) {
			cancel()
			return nil, nil
		}
		select {
		case d := <-results[i]:
			i++
			if i == len(files) {
				cancel()
			}
			return d.r, d.out
		case <-sh.base.Done():
			cancel()
			return nil, nil
		}
	}
}

// runInWorker runs suite file in a bpfsh process of its own.
func (sh *Shell) runInWorker(ctx context.Context, file string, o testOptions) (*suiteResult, []byte) {
	r := &suiteResult{file: file}
	exe, err := os.Executable()
	if err != nil {
		r.fail(fmt.Errorf("find bpfsh to start a worker: %w", err))
		return r, nil
	}
	tmp, err := os.CreateTemp("", "bpfsh-suite-result-")
	if err != nil {
		r.fail(err)
		return r, nil
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	var args []string
	if sh.Session.Verbose {
		args = append(args, "--verbose")
	}
	args = append(args, "test", workerFlag, tmp.Name())
	if o.verbose {
		args = append(args, "-v")
	}
	// The worker starts in this directory and is given the file as it was
	// given here, so that it names it (and its lines) the same way.
	cmd := exec.CommandContext(ctx, exe, append(args, file)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	data, err := os.ReadFile(tmp.Name())
	if err != nil || len(data) == 0 {
		r.fail(fmt.Errorf("the worker running the suite failed: %v %s", runErr, bytes.TrimSpace(errOut.Bytes())))
		return r, out.Bytes()
	}
	var j suiteJSON
	if err := json.Unmarshal(data, &j); err != nil {
		r.fail(fmt.Errorf("read the worker's result: %w", err))
		return r, out.Bytes()
	}
	if o.verbose {
		out.Write(errOut.Bytes()) // serially, -v shows commands' errors too
	}
	return fromJSON(j), out.Bytes()
}
