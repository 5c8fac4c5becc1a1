// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestConcurrentIncrements runs read-modify-write transactions on one
// counter from several goroutines at once, each on its own OS thread, so
// that the program runs on several CPUs at the same time: the commit lock,
// validation and the transactions' busy words are exercised for real.
// Serializability means no increment is lost: the counter ends at the
// number of COMMITs answered OK, and the log, read as it fills, holds the
// counter's values 1, 2, 3... in seq order.
func TestConcurrentIncrements(t *testing.T) {
	const workers, each = 4, 250
	k := load(t, longTimeout(t))
	k.set(0, "ctr", "0")
	k.drain()

	// Drain the log while the workers run; a commit that finds it full
	// is retried.
	ctx, cancel := context.WithCancel(context.Background())
	var recs []LogRecord
	drained := make(chan error)
	go func() {
		for {
			k.log.SetDeadline(time.Now().Add(20 * time.Millisecond))
			rec, err := k.log.Read()
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				if ctx.Err() != nil {
					drained <- nil
					return
				}
				continue
			case err != nil:
				drained <- err
				return
			}
			r, err := ParseLogRecord(rec.RawSample)
			if err != nil {
				drained <- err
				return
			}
			recs = append(recs, r)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var conflicts, busy [workers]int
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			c := NewClient(k.h.Prog)
			for done := 0; done < each; {
				b, err := c.Begin()
				if err != nil || b.Status() != StatusOK {
					errs <- errors.Join(err, errors.New("BEGIN: "+b.Status().String()))
					return
				}
				g, err := c.Get(b.TxID, []byte("ctr"))
				if err != nil || g.Status() != StatusOK {
					errs <- errors.Join(err, errors.New("GET failed"))
					return
				}
				n, _ := strconv.Atoi(string(g.Value))
				if r, err := c.Set(b.TxID, []byte("ctr"), []byte(strconv.Itoa(n+1))); err != nil || r.Status() != StatusOK {
					errs <- errors.Join(err, errors.New("SET failed"))
					return
				}
				for {
					r, err := c.Commit(b.TxID)
					if err != nil {
						errs <- err
						return
					}
					switch r.Status() {
					case StatusOK:
						done++
					case StatusConflict:
						conflicts[w]++
					case StatusBusy, StatusLogFull:
						busy[w]++
						runtime.Gosched()
						continue
					default:
						errs <- errors.New("COMMIT: " + r.Status().String())
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	recs = append(recs, k.drain()...)
	if r := k.get(0, "ctr"); string(r.Value) != strconv.Itoa(workers*each) {
		t.Fatalf("counter %q after %d increments", r.Value, workers*each)
	}
	if len(recs) != workers*each {
		t.Fatalf("%d log records, want %d", len(recs), workers*each)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+2) || len(r.Writes) != 1 || string(r.Writes[0].Value) != strconv.Itoa(i+1) {
			t.Fatalf("record %d: seq %d, writes %+v; want seq %d setting ctr to %d", i, r.Seq, r.Writes, i+2, i+1)
		}
	}
	t.Logf("conflicts per worker %v, retries on BUSY or LOG_FULL %v", conflicts, busy)
}
