package bench

import (
	"fmt"
	"os"
	"runtime/debug"
)

// Binary says which build of noderoll was measured: its peak RSS counts the
// pages of the executable the kernel mapped in, and a cgo build is three
// times the size of a pure-Go one (kustomize, which kubectl's drain package
// brings in, imports "plugin"; with cgo the linker then keeps every symbol
// and every method).
type Binary struct {
	Path string  `json:"path"`
	MiB  float64 `json:"sizeMiB"`
	Cgo  string  `json:"cgo"` // CGO_ENABLED at build time
}

// DescribeBinary reads the size of the executable at path and the cgo
// setting of the running build (the bench runs the binary it is).
func DescribeBinary(path string) Binary {
	b := Binary{Path: path, Cgo: "unknown"}
	if fi, err := os.Stat(path); err == nil {
		b.MiB = float64(fi.Size()) / (1 << 20)
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "CGO_ENABLED" {
				b.Cgo = s.Value
			}
		}
	}
	return b
}

func (b Binary) String() string {
	s := fmt.Sprintf("%s (%.0f MiB, CGO_ENABLED=%s)", b.Path, b.MiB, b.Cgo)
	if b.Cgo == "1" {
		s += "; a release build (CGO_ENABLED=0) is a third of the size, and the executable's mapped pages count in peak RSS"
	}
	return s
}
