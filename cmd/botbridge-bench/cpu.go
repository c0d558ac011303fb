package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// labelled runs f with the pprof label side=side, which the goroutines f
// starts inherit, so that a CPU profile of a run tells the bridge's work
// (side=bridge) from the fake Slack's (side=slack), the simulated people's
// (side=people) and the direct client's (side=direct):
//
//	go tool pprof -tagfocus side=bridge botbridge-bench cpu.prof
func labelled(side string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("side", side), func(context.Context) { f() })
}

// cpuTimes is the CPU time (user and system) used so far by this process
// and by the emulator child.
type cpuTimes struct {
	self, child time.Duration
}

func (b *bench) cpuNow() cpuTimes {
	var t cpuTimes
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		t.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b.emu != nil {
		t.child, _ = procCPU(b.emu.cmd.Process.Pid)
	}
	return t
}

func (t cpuTimes) sub(u cpuTimes) cpuTimes {
	return cpuTimes{self: t.self - u.self, child: t.child - u.child}
}

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ), 100
// on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU reads a process's user and system time from /proc (Linux); it
// fails elsewhere.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces; fields count from
	// after it: state is field 3, utime 14 and stime 15.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// machineBusy reads the CPU time all processes on the machine have used
// (the busy fields of /proc/stat's cpu line), so that a run can tell how
// much of the machine others took meanwhile; it fails off Linux.
func machineBusy() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected format")
	}
	var busy int64
	// user nice system idle iowait irq softirq steal: all but idle and
	// iowait are work.
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return time.Duration(busy) * clockTick, nil
}
