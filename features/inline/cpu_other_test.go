//go:build !unix

package inline

import "time"

// processCPU is not available here; benchmarks skip the cpu-ns/op metric.
func processCPU() time.Duration { return -1 }
