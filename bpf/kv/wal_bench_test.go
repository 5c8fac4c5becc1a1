// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkWriterBurst: one producer commits as fast as test-run allows
// (retrying on LOG_FULL) while the writer drains to a WAL on the test's
// temporary directory; reports records/s and fsyncs/s over the burst.
func BenchmarkWriterBurst(b *testing.B) {
	for _, c := range []struct {
		name string
		rec  func(*rand.Rand, int) LogRecord
	}{
		{"small", func(_ *rand.Rand, i int) LogRecord { return smallRecord(i) }},
		{"random", func(rng *rand.Rand, _ int) LogRecord { return randomRecord(rng) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newKVFixture(b)
			w := openWriter(b, f, WriterOptions{})
			rng := rand.New(rand.NewPCG(41, 42))
			recs := make([]LogRecord, 1024)
			for i := range recs {
				recs[i] = c.rec(rng, i)
			}
			b.ResetTimer()
			start := time.Now()
			var paused time.Duration
			for i := range b.N {
				f.commitRetry(b, recs[i%len(recs)])
				if i%20000 == 19999 {
					// Keep the WAL (and the disk use) bounded, as
					// a real deployment does; not timed.
					b.StopTimer()
					t0 := time.Now()
					checkpoint(b, f, w)
					f.commits = f.commits[:0]
					paused += time.Since(t0)
					b.StartTimer()
				}
			}
			syncWriter(b, w)
			el := (time.Since(start) - paused).Seconds()
			b.StopTimer()
			st := w.Stats()
			b.ReportMetric(float64(st.Records)/el, "records/s")
			b.ReportMetric(float64(st.Batches)/el, "fsyncs/s")
			b.ReportMetric(float64(st.Records)/float64(max(st.Batches, 1)), "records/fsync")
			b.ReportMetric(float64(st.Bytes)/el/(1<<20), "MiB/s")
			b.ReportMetric(float64(f.logFull)/float64(b.N), "LOG_FULL/op")
		})
	}
}

// BenchmarkWriterDrain: the ring is filled while the writer is held up,
// then released; times only the drain, which is the most the writer
// sustains (the producer is out of the picture).
func BenchmarkWriterDrain(b *testing.B) {
	b.Run("small", func(b *testing.B) { benchDrain(b, func(_ *rand.Rand, i int) LogRecord { return smallRecord(i) }) })
	b.Run("random", func(b *testing.B) { benchDrain(b, func(rng *rand.Rand, _ int) LogRecord { return randomRecord(rng) }) })
}

func benchDrain(b *testing.B, rec func(*rand.Rand, int) LogRecord) {
	f := newKVFixture(b)
	w := openWriter(b, f, WriterOptions{})
	rng := rand.New(rand.NewPCG(43, 44))
	const perRound = 400 // of 450 full-size records the 4 MiB ring holds
	var drained time.Duration
	var records, batches, bytes uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		w.fileMu.Lock()
		for i := range perRound {
			f.commit(b, rec(rng, i))
		}
		before := w.Stats()
		b.StartTimer()
		start := time.Now()
		w.fileMu.Unlock()
		syncWriter(b, w)
		drained += time.Since(start)
		after := w.Stats()
		records += after.Records - before.Records
		batches += after.Batches - before.Batches
		bytes += after.Bytes - before.Bytes
		b.StopTimer()
		checkpoint(b, f, w) // keep the WAL small
		f.commits = f.commits[:0]
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(records)/drained.Seconds(), "records/s")
	b.ReportMetric(float64(records)/float64(max(batches, 1)), "records/fsync")
	b.ReportMetric(float64(bytes)/drained.Seconds()/(1<<20), "MiB/s")
}
