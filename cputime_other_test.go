//go:build !unix

package dtls

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
