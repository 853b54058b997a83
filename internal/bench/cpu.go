package bench

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// cpuTicks is the kernel's clock tick for /proc's CPU times (USER_HZ, 100
// on every Linux architecture Go supports).
const cpuTicks = 100

// cpuOf reads the CPU time (user and system) a process has used so far from
// /proc/PID/stat; zero where it cannot be read (gone, or not Linux).
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis. utime and stime are the
	// 14th and 15th fields, the 12th and 13th after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	user, _ := strconv.ParseInt(f[11], 10, 64)
	sys, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(user+sys) * time.Second / cpuTicks
}

// cpuSnapshot is the CPU time of named processes at one moment.
type cpuSnapshot map[string]time.Duration

func snapshotCPU(pids map[string]int) cpuSnapshot {
	out := cpuSnapshot{}
	for name, pid := range pids {
		if pid > 0 {
			out[name] = cpuOf(pid)
		}
	}
	return out
}

// since is the CPU each process used from the earlier snapshot to this one,
// in seconds.
func (s cpuSnapshot) since(earlier cpuSnapshot) map[string]float64 {
	out := map[string]float64{}
	for name, t := range s {
		out[name] = (t - earlier[name]).Seconds()
	}
	return out
}

// cpuLine lists processes by the CPU they used, most first.
func cpuLine(cpu map[string]float64) string {
	names := make([]string, 0, len(cpu))
	for n := range cpu {
		names = append(names, n)
	}
	sort.Slice(names, func(a, b int) bool { return cpu[names[a]] > cpu[names[b]] })
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.0fs", n, cpu[n]))
	}
	return strings.Join(parts, ", ")
}
