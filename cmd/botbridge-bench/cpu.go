package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
)

// labelled runs f with the pprof label side=side, which the goroutines f
// starts inherit, so that a CPU profile of a run tells the bridge's work
// (side=bridge) from the fake Slack's (side=slack), the simulated people's
// (side=people) and the direct client's (side=direct):
//
//	go tool pprof -tagfocus side=bridge botbridge-bench cpu.prof
//
// When f returns, the goroutine is the people's again: the phases run on
// one goroutine labelled so, which waits for the posts and makes the
// people talk, and which calls labelled itself to start the other sides.
func labelled(side string, f func()) {
	pprof.Do(peopleLabels, pprof.Labels("side", side), func(context.Context) { f() })
}

// peopleLabels carries the label of the phases' goroutine.
var peopleLabels = pprof.WithLabels(context.Background(), pprof.Labels("side", "people"))

// splitSides are the sides a CPU split tells apart, in the order it prints
// them; the samples of no side (the Go runtime's own work: the garbage
// collector's background marking, the scheduler) count as "runtime".
var splitSides = []string{"bridge", "slack", "people", "runtime"}

// startSplit starts a CPU profile of this process, kept in memory.
func startSplit() (*splitProfile, error) {
	p := &splitProfile{}
	if err := pprof.StartCPUProfile(&p.buf); err != nil {
		return nil, fmt.Errorf("-cpu-split: %w", err)
	}
	return p, nil
}

// splitProfile is a CPU profile of startSplit's.
type splitProfile struct {
	buf     bytes.Buffer
	stopped bool
}

// stop ends the profile and returns the share of its samples of each of
// splitSides. Later calls, and calls on nil (no profile), return nil.
func (p *splitProfile) stop() (map[string]float64, error) {
	if p == nil || p.stopped {
		return nil, nil
	}
	p.stopped = true
	pprof.StopCPUProfile()
	return sideShares(&p.buf)
}

// sideShares reads a CPU profile and returns the share of its CPU time of
// each of splitSides, by the samples' side label.
func sideShares(r io.Reader) (map[string]float64, error) {
	p, err := profile.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("-cpu-split: read the CPU profile: %w", err)
	}
	col := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			col = i
		}
	}
	if col < 0 {
		return nil, errors.New("-cpu-split: the CPU profile has no cpu samples")
	}
	by := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		side := "runtime"
		if l := s.Label["side"]; len(l) > 0 && slices.Contains(splitSides, l[0]) {
			side = l[0]
		}
		by[side] += s.Value[col]
		total += s.Value[col]
	}
	if total == 0 {
		return nil, errors.New("-cpu-split: the CPU profile of the run has no samples")
	}
	shares := make(map[string]float64, len(splitSides))
	for _, side := range splitSides {
		shares[side] = float64(by[side]) / float64(total)
	}
	return shares, nil
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

// writeSplit prints, for each throughput run, the CPU time of a message by
// side and the rate this machine's cores allow at that cost, were CPU all a
// message needs: the ceiling the run's figure meets on this machine. The
// rate of the bridge alone counts the bridge and the Go runtime (whose
// work is mostly the bridge's garbage), as if the fakes cost nothing.
func writeSplit(w io.Writer, rooms []int, costs [3]perMsg) {
	cores := runtime.NumCPU()
	fmt.Fprintf(w, "CPU per message by side (-cpu-split), ms: bridge + fake Slack + people + Go runtime (this process) + emulator; the rate %d cores allow at that cost:\n", cores)
	for i, c := range costs {
		self, child := ms(c.cpu.self), ms(c.cpu.child)
		parts := make([]string, 0, len(splitSides)+1)
		for _, side := range splitSides {
			parts = append(parts, fmt.Sprintf("%.2f", self*c.split[side]))
		}
		parts = append(parts, fmt.Sprintf("%.2f", child))
		all, bridge := self+child, self*(c.split["bridge"]+c.split["runtime"])
		fmt.Fprintf(w, "  %d rooms: %s = %.2f ms: at most %.0f msgs/s; the bridge alone (%.2f ms): %.0f msgs/s\n",
			rooms[i], strings.Join(parts, " + "), all, float64(cores)*1000/all, bridge, float64(cores)*1000/bridge)
	}
}
