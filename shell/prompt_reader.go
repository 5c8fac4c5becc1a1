package shell

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

// newPromptReader is a placeholder plain reader until the go-prompt one lands.
func newPromptReader(sh *Shell, in *os.File) (LineReader, error) {
	return &plainReader{sc: bufio.NewScanner(in), out: sh.Out}, nil
}

type plainReader struct {
	sc  *bufio.Scanner
	out interface{ Write([]byte) (int, error) }
}

func (p *plainReader) ReadLine() (string, error) {
	fmt.Fprint(p.out, "bpfsh> ")
	if !p.sc.Scan() {
		if p.sc.Err() != nil {
			return "", p.sc.Err()
		}
		return "", io.EOF
	}
	return p.sc.Text(), nil
}

func (p *plainReader) Close() error { return nil }
