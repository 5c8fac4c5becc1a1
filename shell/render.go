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

// render writes res to sh.Out as JSON or text.
func (sh *Shell) render(res commands.Result) error {
	if sh.Session.JSON {
		return sh.renderJSONResult(res)
	}
	return sh.renderText(res)
}

func (sh *Shell) renderText(res commands.Result) error {
	switch r := res.(type) {
	case nil:
		return nil
	case *commands.Message:
		if r.Text != "" {
			fmt.Fprintln(sh.Out, r.Text)
		}
	case *commands.Table:
		return sh.writeTable(r.Columns, r.Rows)
	case *commands.Record:
		width := 0
		for _, f := range r.Fields {
			width = max(width, len(f.Name))
		}
		for _, f := range r.Fields {
			fmt.Fprintf(sh.Out, "%-*s  %s\n", width+1, f.Name+":", f.Value)
		}
	case *commands.Text:
		body := r.Body
		if body != "" && !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
		io.WriteString(sh.Out, body)
	case *commands.Stream:
		return sh.writeStream(r)
	case commands.List:
		for i, item := range r {
			if i > 0 {
				fmt.Fprintln(sh.Out)
			}
			if err := sh.renderText(item); err != nil {
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
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRowAlignment(tw.AlignLeft),
		tablewriter.WithPadding(tw.Padding{Left: "", Right: "  ", Overwrite: true}),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
		tablewriter.WithTrimSpace(tw.Off),
	}
}

func (sh *Shell) writeTable(columns []string, rows [][]string) error {
	var buf bytes.Buffer
	t := tablewriter.NewTable(&buf, tableOptions()...)
	t.Header(columns)
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
		io.WriteString(sh.Out, strings.TrimRight(line, " \n")+"\n")
	}
	return nil
}

// streamSample is how many rows of a Stream size its columns before the
// rest are written as they come.
const streamSample = 512

// writeStream writes rows as they are produced, with column widths taken
// from the first streamSample rows, through one buffered writer: a million
// rows cost a million formatted lines, not a million write(2)s.
func (sh *Shell) writeStream(s *commands.Stream) error {
	w := bufio.NewWriterSize(sh.Out, 256*1024)
	widths := make([]int, len(s.Columns))
	for i, c := range s.Columns {
		widths[i] = len(c)
	}
	var sample [][]string
	flushed := false
	writeRow := func(row []string) {
		for i, cell := range row {
			if i == len(row)-1 {
				w.WriteString(cell)
				break
			}
			w.WriteString(cell)
			if pad := widths[min(i, len(widths)-1)] - len(cell); pad > 0 {
				w.WriteString(strings.Repeat(" ", pad))
			}
			w.WriteString("  ")
		}
		w.WriteByte('\n')
	}
	flush := func() {
		header := make([]string, len(s.Columns))
		for i, c := range s.Columns {
			header[i] = strings.ToUpper(c)
		}
		writeRow(header)
		for _, row := range sample {
			writeRow(row)
		}
		sample, flushed = nil, true
	}
	err := s.Each(func(row []string, _ any) error {
		if flushed {
			writeRow(row)
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

func (sh *Shell) renderJSONResult(res commands.Result) error {
	switch r := res.(type) {
	case nil:
		return sh.renderJSON(nil)
	case *commands.Message:
		return sh.renderJSON(r.Data)
	case *commands.Table:
		if r.JSON != nil {
			return sh.renderJSON(r.JSON)
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
		return sh.renderJSON(objs)
	case *commands.Record:
		if r.JSON != nil {
			return sh.renderJSON(r.JSON)
		}
		obj := make(map[string]string, len(r.Fields))
		for _, f := range r.Fields {
			obj[f.Name] = f.Value
		}
		return sh.renderJSON(obj)
	case *commands.Text:
		if r.JSON != nil {
			return sh.renderJSON(r.JSON)
		}
		return sh.renderJSON(r.Body)
	case *commands.Stream:
		return sh.writeJSONStream(r)
	case commands.List:
		items := make([]json.RawMessage, 0, len(r))
		for _, item := range r {
			var b strings.Builder
			inner := *sh
			inner.Out = &b
			if err := inner.renderJSONResult(item); err != nil {
				return err
			}
			items = append(items, json.RawMessage(b.String()))
		}
		return sh.renderJSON(items)
	}
	return fmt.Errorf("internal error: no JSON renderer for %T", res)
}

func (sh *Shell) renderJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	b = append(b, '\n')
	_, err = sh.Out.Write(b)
	return err
}

// writeJSONStream writes an array of the stream's row objects, one per line.
func (sh *Shell) writeJSONStream(s *commands.Stream) error {
	w := bufio.NewWriterSize(sh.Out, 256*1024)
	enc := json.NewEncoder(w)
	first := true
	w.WriteByte('[')
	err := s.Each(func(_ []string, obj any) error {
		if !first {
			w.WriteByte(',')
		}
		first = false
		if raw, ok := obj.(json.RawMessage); ok {
			// Encoded by the command already: a million rows would
			// otherwise cost a million re-validations.
			w.Write(raw)
			return w.WriteByte('\n')
		}
		return enc.Encode(obj)
	})
	w.WriteString("]\n")
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}
