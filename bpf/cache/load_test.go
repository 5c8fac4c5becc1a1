package cache

import "testing"

func TestLoadVerifies(t *testing.T) {
	c := load(t)
	for _, name := range []string{RxProgram, FillProgram} {
		info, err := c.coll.Programs[name].Info()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := info.VerifiedInstructions()
		t.Logf("%s: %d verified instructions", name, n)
	}
}
