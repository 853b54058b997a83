// Package profiles keeps a process's heap profile at its peak and its CPU
// profile, when asked by environment variables: how the benchmark's memory
// and CPU figures are explained (go tool pprof FILE).
package profiles

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

// Env names a file to keep a heap profile in: the one taken at
// the process's highest heap, sampled every few seconds. It is how the
// benchmark's memory figures are explained (go tool pprof FILE). Each
// process writes FILE.PID: the variable reaches every noderoll a bench or
// sandbox starts.
const Env = "NODEROLL_HEAP_PROFILE"

// CPUEnv names a file to write the process's CPU profile to, FILE.PID as
// Env's.
const CPUEnv = "NODEROLL_CPU_PROFILE"

// FromEnv profiles the heap when Env names a file (see Peak), and the CPU
// when CPUEnv does. The returned func stops them and writes the files.
func FromEnv(ctx context.Context) func() {
	stops := []func(){}
	if path := os.Getenv(Env); path != "" {
		stops = append(stops, Peak(ctx, path))
	}
	if path := os.Getenv(CPUEnv); path != "" {
		if f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid())); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				stops = append(stops, func() { pprof.StopCPUProfile(); _ = f.Close() })
			}
		}
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// Peak samples the heap until ctx ends and writes the profile of its
// peak to path; the returned func stops it and writes the file.
func Peak(ctx context.Context, path string) func() {
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
