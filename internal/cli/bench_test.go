package cli

import (
	"strings"
	"testing"
)

func TestControllerRowFlag(t *testing.T) {
	for in, want := range map[string][2]int{"3x100": {3, 100}, "1x1": {1, 1}, "0": {0, 0}} {
		g, n, err := parseControllerRow(in)
		if err != nil || g != want[0] || n != want[1] {
			t.Errorf("%q: %d groups of %d (%v), want %v", in, g, n, err, want)
		}
	}
	for _, bad := range []string{"3", "x100", "3x", "0x10", "11x10", "3x0", "3x100x2", "threex100"} {
		if _, _, err := parseControllerRow(bad); err == nil || !strings.Contains(err.Error(), "GROUPSxNODES") {
			t.Errorf("%q: %v, want an error that shows the form", bad, err)
		}
	}
}
