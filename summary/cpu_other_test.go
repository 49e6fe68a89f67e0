//go:build !unix

package summary_test

import "time"

// processCPU is not available here; benchmarks skip the cpu-ns/op metric.
func processCPU() time.Duration { return -1 }
