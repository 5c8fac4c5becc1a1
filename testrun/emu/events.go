// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"fmt"
	"strings"
)

// EventKind says what an Event records.
type EventKind uint8

// Event kinds.
const (
	// EventHelper is a helper call: its arguments and result.
	EventHelper EventKind = iota
	// EventPrintk is a line bpf_printk (bpf_trace_printk) wrote, where it
	// wrote it: Text is the line.
	EventPrintk
	// EventRingbuf is a ring buffer record submitted (Data) or discarded.
	EventRingbuf
	// EventTailCall is a tail call: Text names the program entered, or
	// says why the call fell through.
	EventTailCall
	// EventTimer is a bpf_timer call recorded without firing the timer.
	EventTimer
	// EventCallback is a helper's callback finishing (bpf_loop's
	// iterations, for_each_map_elem's elements).
	EventCallback
	// EventNote is something the engine wants the user to know.
	EventNote
	// EventEdit is a change the user made (set rN, set memory).
	EventEdit
)

var eventKindNames = [...]string{"helper", "printk", "ringbuf", "tail call", "timer", "callback", "note", "edit"}

// String names the kind.
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return fmt.Sprintf("event %d", k)
}

// Event is something the program did that is worth showing where it
// happened.
type Event struct {
	// Step is the instruction count when it happened, PC the slot, Func
	// the function and Frame the frame depth (0: the entry function).
	Step  uint64 `json:"step"`
	PC    int    `json:"pc"`
	Func  string `json:"func,omitempty"`
	Frame int    `json:"frame"`
	Kind  EventKind
	// Helper is the helper's name and HelperID its number.
	Helper   string `json:"helper,omitempty"`
	HelperID int32  `json:"helper_id,omitempty"`
	// Args are the arguments as passed (r1..), ArgText what they are
	// ("map hits", "stack frame 0 -4", "42").
	Args    []uint64 `json:"args,omitempty"`
	ArgText []string `json:"arg_text,omitempty"`
	// Ret is the helper's result (r0), when it returned one.
	Ret     uint64 `json:"ret"`
	RetText string `json:"ret_text,omitempty"`
	HasRet  bool   `json:"-"`
	// Text is a printk line, a note, a tail call's target.
	Text string `json:"text,omitempty"`
	// Map is the map the event concerns, Data its bytes (a record, a key).
	Map  string `json:"map,omitempty"`
	Data []byte `json:"data,omitempty"`
}

// String is one line for the event.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d pc %d", e.Step, e.PC)
	switch e.Kind {
	case EventHelper:
		fmt.Fprintf(&b, " %s(%s)", e.Helper, strings.Join(e.ArgText, ", "))
		switch {
		case e.RetText != "":
			fmt.Fprintf(&b, " = %s", e.RetText)
		case e.HasRet:
			fmt.Fprintf(&b, " = %d", int64(e.Ret))
		}
		if e.Text != "" {
			fmt.Fprintf(&b, ": %s", e.Text)
		}
	case EventPrintk:
		fmt.Fprintf(&b, " printk: %s", e.Text)
	default:
		fmt.Fprintf(&b, " %s: %s", e.Kind, e.Text)
	}
	return b.String()
}
