//go:build unix

package inline

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) used by the process so
// far, so benchmarks can report a figure that other load on the machine
// does not inflate.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
