// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/bpfsh/bpfsh/commands"
)

// render writes res to sh.out as JSON or text.
func (sh *Shell) render(res commands.Result) error {
	rw := resultWriter{out: sh.Out, pretty: sh.Pretty}
	if sh.Session.JSON {
		return rw.json(res)
	}
	return rw.text(res)
}

// resultWriter writes results to one stream; pretty indents JSON.
type resultWriter struct {
	out    io.Writer
	pretty bool
}

func (rw resultWriter) text(res commands.Result) error {
	if r, ok := res.(commands.Renderable); ok {
		return rw.text(r.Render())
	}
	switch r := res.(type) {
	case nil:
		return nil
	case *commands.Message:
		if r.Text != "" {
			fmt.Fprintln(rw.out, r.Text)
		}
	case *commands.Table:
		return rw.writeTable(r.Columns, r.Rows)
	case *commands.Record:
		width := 0
		for _, f := range r.Fields {
			width = max(width, len(f.Name))
		}
		for _, f := range r.Fields {
			fmt.Fprintf(rw.out, "%-*s  %s\n", width+1, f.Name+":", f.Value)
		}
	case *commands.Text:
		body := r.Body
		if body != "" && !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
		io.WriteString(rw.out, body)
	case *commands.Stream:
		return rw.writeStream(r)
	case commands.List:
		for i, item := range r {
			if i > 0 {
				fmt.Fprintln(rw.out)
			}
			if err := rw.text(item); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("internal error: no renderer for %T", res)
	}
	return nil
}

// tableOptions draws tables as aligned columns under upper-case headers:
// readable on a terminal and easy to cut or grep in a pipe.
func tableOptions() []tablewriter.Option {
	return []tablewriter.Option{
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders: tw.BorderNone,
			Symbols: tw.NewSymbols(tw.StyleNone),
			Settings: tw.Settings{
				Separators: tw.Separators{BetweenRows: tw.Off, BetweenColumns: tw.Off},
				Lines:      tw.Lines{ShowHeaderLine: tw.Off},
			},
		})),
		tablewriter.WithHeaderAutoFormat(tw.Off), // keeps "loaded_at" as one word
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRowAlignment(tw.AlignLeft),
		tablewriter.WithPadding(tw.Padding{Left: "", Right: "  ", Overwrite: true}),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
		tablewriter.WithTrimSpace(tw.Off),
	}
}

func (rw resultWriter) writeTable(columns []string, rows [][]string) error {
	var buf bytes.Buffer
	t := tablewriter.NewTable(&buf, tableOptions()...)
	t.Header(upper(columns))
	for _, row := range rows {
		if err := t.Append(row); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	// The last column is padded like the others; drop that trailing blank.
	for line := range strings.Lines(buf.String()) {
		io.WriteString(rw.out, strings.TrimRight(line, " \n")+"\n")
	}
	return nil
}

// streamSample is how many rows of a Stream size its columns before the
// rest are written as they come.
const streamSample = 512

// writeStream writes rows as they are produced, with column widths taken
// from the first streamSample rows, through one buffered writer: a million
// rows cost a million formatted lines, not a million write(2)s.
func (rw resultWriter) writeStream(s *commands.Stream) error {
	w := bufio.NewWriterSize(rw.out, 256*1024)
	widths := make([]int, len(s.Columns))
	for i, c := range s.Columns {
		widths[i] = len(c)
	}
	var sample [][]string
	flushed := false
	if s.Live {
		for i, w := range s.Widths {
			if i < len(widths) {
				widths[i] = max(widths[i], w)
			}
		}
	}
	writeRow := func(row []string) {
		// Cells after the last non-empty one are not padded, so that no
		// line ends in blanks.
		last := len(row) - 1
		for last > 0 && row[last] == "" {
			last--
		}
		for i, cell := range row[:last+1] {
			w.WriteString(cell)
			if i == last {
				break
			}
			if pad := widths[min(i, len(widths)-1)] - len(cell); pad > 0 {
				w.WriteString(strings.Repeat(" ", pad))
			}
			w.WriteString("  ")
		}
		w.WriteByte('\n')
	}
	flush := func() {
		writeRow(upper(s.Columns))
		for _, row := range sample {
			writeRow(row)
		}
		sample, flushed = nil, true
	}
	if s.Live {
		flush()
		if err := w.Flush(); err != nil {
			return err
		}
	}
	err := s.Each(func(row []string, _ any) error {
		if flushed {
			writeRow(row)
			if s.Live {
				return w.Flush()
			}
			return nil
		}
		for i, cell := range row {
			if i < len(widths) {
				widths[i] = max(widths[i], len(cell))
			}
		}
		sample = append(sample, row)
		if len(sample) >= streamSample {
			flush()
		}
		return nil
	})
	if !flushed {
		flush()
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

func (rw resultWriter) json(res commands.Result) error {
	if r, ok := res.(commands.Renderable); ok {
		return rw.json(r.Render())
	}
	switch r := res.(type) {
	case nil:
		return rw.renderJSON(nil)
	case *commands.Message:
		return rw.renderJSON(r.Data)
	case *commands.Table:
		if r.JSON != nil {
			return rw.renderJSON(r.JSON)
		}
		objs := make([]map[string]string, 0, len(r.Rows))
		for _, row := range r.Rows {
			obj := make(map[string]string, len(row))
			for i, cell := range row {
				if i < len(r.Columns) {
					obj[r.Columns[i]] = cell
				}
			}
			objs = append(objs, obj)
		}
		return rw.renderJSON(objs)
	case *commands.Record:
		if r.JSON != nil {
			return rw.renderJSON(r.JSON)
		}
		obj := make(map[string]string, len(r.Fields))
		for _, f := range r.Fields {
			obj[f.Name] = f.Value
		}
		return rw.renderJSON(obj)
	case *commands.Text:
		if r.JSON != nil {
			return rw.renderJSON(r.JSON)
		}
		return rw.renderJSON(r.Body)
	case *commands.Stream:
		return rw.writeJSONStream(r)
	case commands.List:
		items := make([]json.RawMessage, 0, len(r))
		for _, item := range r {
			var b strings.Builder
			if err := (resultWriter{out: &b, pretty: rw.pretty}).json(item); err != nil {
				return err
			}
			items = append(items, json.RawMessage(b.String()))
		}
		return rw.renderJSON(items)
	}
	return fmt.Errorf("internal error: no JSON renderer for %T", res)
}

// renderJSON writes v as one line of JSON. HTML escaping is off: the
// output goes to terminals and jq, where "s>=" must stay readable.
func (rw resultWriter) renderJSON(v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if rw.pretty {
		enc.SetIndent("", "    ") // bpftool -p indents by four
	}
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err := rw.out.Write(b.Bytes())
	return err
}

// upper is the column names as headers: upper case, words kept whole.
func upper(columns []string) []string {
	out := make([]string, len(columns))
	for i, c := range columns {
		out[i] = strings.ToUpper(c)
	}
	return out
}

// writeJSONStream writes an array of the stream's row objects, one per line.
func (rw resultWriter) writeJSONStream(s *commands.Stream) error {
	w := bufio.NewWriterSize(rw.out, 256*1024)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if rw.pretty {
		enc.SetIndent("", "    ")
	}
	first := true
	w.WriteByte('[')
	err := s.Each(func(_ []string, obj any) error {
		if !first {
			w.WriteByte(',')
		}
		first = false
		if raw, ok := obj.(json.RawMessage); ok && rw.pretty {
			var ind bytes.Buffer
			if err := json.Indent(&ind, raw, "", "    "); err != nil {
				return err
			}
			w.Write(ind.Bytes())
			w.WriteByte('\n')
		} else if ok {
			// Encoded by the command already: a million rows would
			// otherwise cost a million re-validations.
			w.Write(raw)
			w.WriteByte('\n')
		} else if err := enc.Encode(obj); err != nil {
			return err
		}
		if !s.Live {
			return nil
		}
		return w.Flush()
	})
	w.WriteString("]\n")
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}
