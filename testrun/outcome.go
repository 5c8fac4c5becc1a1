// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"encoding/hex"
	"slices"
)

// JSON is the outcome as `run -j` prints it:
//
//	{"retval": "XDP_TX", "retval_code": 3, "duration_ns": 230, "data_out": "<hex>",
//	 "maps_changed": [...], "trace": [...], ...}
//
// Keys whose value would be empty are left out, except retval, retval_code,
// maps_changed and trace, which are always there. The caller may add its
// own keys (the decoded "layers" of the output packet).
func (o *Outcome) JSON() map[string]any {
	j := map[string]any{
		"program":      o.Program,
		"id":           uint32(o.ProgramID),
		"type":         o.TypeName,
		"retval":       o.RetvalName,
		"retval_code":  o.Retval,
		"maps_changed": nonNil(o.Maps),
		"trace":        traceJSON(o.Trace),
	}
	if o.Timed {
		j["duration_ns"] = o.Duration.Nanoseconds()
	}
	if o.DataIn != nil {
		j["data_in"] = hex.EncodeToString(o.DataIn)
	}
	if o.DataOut != nil {
		j["data_out"] = hex.EncodeToString(o.DataOut)
		j["packet_changed"] = o.PacketChanged
		j["layers"] = o.LayersOut
	}
	if o.Meta != nil {
		j["meta"] = hex.EncodeToString(o.Meta)
	}
	if len(o.Ctx) > 0 {
		ctx := map[string]any{}
		for _, c := range o.Ctx {
			ctx[c.Field] = c.AfterJSON
		}
		j["ctx_out"] = ctx
	}
	if len(o.FlowKeys) > 0 {
		keys := map[string]any{}
		for _, k := range o.FlowKeys {
			keys[k.Field] = k.AfterJSON
		}
		j["flow_keys"] = keys
	}
	if len(o.MapNotes) > 0 {
		j["map_notes"] = o.MapNotes
	}
	if len(o.MapMethods) > 0 {
		j["map_methods"] = o.MapMethods
	}
	if len(o.MapsNotRead) > 0 {
		j["maps_not_read"] = o.MapsNotRead
	}
	if o.MapRuns > 0 {
		j["maps_runs"] = o.MapRuns
	}
	if len(o.Streams) > 0 {
		j["streams"] = o.Streams
	}
	if tm := o.Timing; tm != nil {
		t := map[string]any{
			"runs":       tm.Runs,
			"clock":      tm.Clock,
			"min_ns":     tm.Min.Nanoseconds(),
			"median_ns":  tm.Median.Nanoseconds(),
			"p99_ns":     tm.P99.Nanoseconds(),
			"per_run_ns": tm.PerRun().Nanoseconds(),
			"per_run":    tm.PerRunSource(),
			"retvals":    tm.Retvals,
			"rewrote":    tm.Rewrote,
		}
		if tm.Interrupted {
			t["interrupted"] = true
			t["runs_asked"] = tm.Asked
			if tm.KernelAsked > 0 {
				t["kernel_repeat_asked"] = tm.KernelAsked
			}
		}
		if tm.Overhead > 0 {
			t["timer_overhead_ns"] = tm.Overhead.Nanoseconds()
		}
		if tm.KernelRepeat > 0 {
			t["kernel_repeat"] = tm.KernelRepeat
			t["kernel_avg_ns"] = tm.KernelAvg.Nanoseconds()
			t["kernel_retval"] = tm.KernelRetval
		}
		if len(tm.Warnings) > 0 {
			t["warnings"] = tm.Warnings
		}
		j["timing"] = t
	}
	if l := o.Live; l != nil {
		arrivals := make([]map[string]any, len(l.Arrivals))
		for i, a := range l.Arrivals {
			arrivals[i] = map[string]any{"key": a.Key, "side": a.Side, "bytes": len(a.Data), "data": hex.EncodeToString(a.Data)}
		}
		live := map[string]any{
			"map": l.Map, "map_id": uint32(l.MapID), "attach": l.Attach, "from": l.From, "sent": l.Sent,
			"verdict": l.Verdict, "summary": l.Summary, "arrivals": arrivals,
		}
		if l.Verdict == "redirected" {
			live["to"] = l.To
			live["ingress"] = l.Ingress
		}
		if l.SendError != "" {
			live["send_error"] = l.SendError
		}
		j["live"] = live
		delete(j, "retval_code") // no return value is seen on real sockets
	}
	if len(o.Notes) > 0 {
		j["notes"] = o.Notes
	}
	return j
}

func nonNil(m []MapChange) []MapChange {
	if m == nil {
		return []MapChange{}
	}
	return m
}

func traceJSON(lines []TraceLine) []TraceLine {
	if lines == nil {
		return []TraceLine{}
	}
	return slices.Clone(lines)
}
