package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

// heapProfileEnv names a file to keep a heap profile in: the one taken at
// the process's highest heap, sampled every few seconds. It is how the
// benchmark's memory figures are explained (go tool pprof FILE). Each
// process writes FILE.PID: the variable reaches every noderoll a bench or
// sandbox starts.
const heapProfileEnv = "NODEROLL_HEAP_PROFILE"

// profileHeap samples the heap until ctx ends and writes the profile of its
// peak to path; the returned func stops it and writes the file.
func profileHeap(ctx context.Context, path string) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var peak uint64
		var best bytes.Buffer
		take := func() {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse <= peak {
				return
			}
			peak = m.HeapInuse
			best.Reset()
			_ = pprof.Lookup("heap").WriteTo(&best, 0)
		}
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			take()
			select {
			case <-ctx.Done():
				take()
				_ = os.WriteFile(fmt.Sprintf("%s.%d", path, os.Getpid()), best.Bytes(), 0o644)
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}
