/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package delayrelay

import (
	"time"

	"golang.org/x/sys/unix"
)

// preciseSleep sleeps d in the kernel (see preciseSpan). The kernel may
// end a sleep late by the thread's timer slack, 50 µs by default, which
// it first lowers to 1 µs (on whatever thread runs the sleep: the relay
// is a test tool, and a lower slack only makes that thread's timed waits
// more precise).
func preciseSleep(d time.Duration) {
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	ts := unix.NsecToTimespec(d.Nanoseconds())
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}
