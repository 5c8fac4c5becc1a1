// SPDX-License-Identifier: Apache-2.0

package commands

// Result is what a command returns for the shell to render. The shell knows
// how to render each of the types below as text for people and as JSON,
// and any Renderable.
type Result any

// Renderable is a result that carries typed data for later commands (expect
// reads a *RunResult's outcome and layers) and is shown as another result:
// the shell renders what Render returns, as text or JSON.
type Renderable interface {
	Render() Result
}

// Message is a one-line outcome, e.g. "pinned 3 objects under ...".
// In JSON it prints as null when Data is nil (as bpftool prints null on
// success), otherwise as Data.
type Message struct {
	Text string
	Data any
}

// Table is rows under named columns. In JSON it prints as JSON when set,
// otherwise as an array of objects keyed by the column names.
type Table struct {
	Columns []string
	Rows    [][]string
	JSON    any
}

// Record is one object's fields in order, shown as "field: value" lines.
// In JSON it prints as JSON when set, otherwise as an object of the fields.
type Record struct {
	Fields []Field
	JSON   any
}

// Field is one line of a Record.
type Field struct {
	Name  string
	Value string
}

// Text is preformatted lines (an instruction dump, C declarations).
// In JSON it prints as JSON when set, otherwise as a string.
type Text struct {
	Body string
	JSON any
}

// Stream is a result too large to hold in memory (a map dump): Each calls
// emit once per row, in order, until emit returns an error or rows run out.
// Text output shows the rows under Columns, sized from the first rows; JSON
// output is an array of the rows' objects, written as they come; an object
// that is a json.RawMessage is written as it is (it must be valid JSON),
// which lets a command encode a million rows faster than reflection can.
type Stream struct {
	Columns []string
	Each    func(emit func(row []string, obj any) error) error
	// Live rows come slowly, as events happen (trace): each is written
	// and flushed as it comes, in columns sized by Widths (the header's
	// width where Widths has none), instead of waiting for a sample.
	Live   bool
	Widths []int
}

// List is several results shown one after another (e.g. "prog show name X"
// matching two programs). In JSON it prints as an array.
type List []Result
