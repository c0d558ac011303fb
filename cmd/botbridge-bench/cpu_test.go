package main

import (
	"bytes"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// TestSideSharesCountsEachSideAndTheUnlabelledAsRuntime splits a profile
// made here, with samples of each side, unlabelled ones, and ones of a side
// the split does not know (the latency phase's direct client).
func TestSideSharesCountsEachSideAndTheUnlabelledAsRuntime(t *testing.T) {
	fn := &profile.Function{ID: 1, Name: "f"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
		Function:   []*profile.Function{fn},
		Location:   []*profile.Location{loc},
	}
	add := func(cpu int64, side string) {
		s := &profile.Sample{Location: []*profile.Location{loc}, Value: []int64{1, cpu}}
		if side != "" {
			s.Label = map[string][]string{"side": {side}}
		}
		p.Sample = append(p.Sample, s)
	}
	add(500, "bridge")
	add(100, "bridge")
	add(200, "slack")
	add(50, "people")
	add(100, "")
	add(50, "direct")
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := sideShares(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"bridge": 0.6, "slack": 0.2, "people": 0.05, "runtime": 0.15}
	for side, w := range want {
		if math.Abs(got[side]-w) > 1e-9 {
			t.Errorf("share of %s = %v, want %v", side, got[side], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("shares %v, want only %v", got, want)
	}

	if _, err := sideShares(strings.NewReader("not a profile")); err == nil || !strings.Contains(err.Error(), "read the CPU profile") {
		t.Errorf("a file that is no profile: %v, want an error saying the profile could not be read", err)
	}
}

func TestCPUSplitNeedsTheThroughputTableAndNoOtherProfile(t *testing.T) {
	_, err := parseFlags([]string{"-cpu-split", "-cpuprofile", "cpu.prof"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-cpu-split: not with -cpuprofile") {
		t.Errorf("-cpu-split with -cpuprofile: %v, want an error naming both", err)
	}
	_, err = parseFlags([]string{"-cpu-split", "-json"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-cpu-split: its figures are in the table, not in -json's object") {
		t.Errorf("-cpu-split with -json: %v, want an error naming both", err)
	}
	_, err = parseFlags([]string{"-cpu-split", "-phases", "latency"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-cpu-split: splits the throughput phase's CPU") {
		t.Errorf("-cpu-split without the throughput phase: %v, want an error saying it needs it", err)
	}
	if o, err := parseFlags([]string{"-cpu-split"}, io.Discard); err != nil || !o.cpuSplit {
		t.Errorf("-cpu-split alone: %v, %v", o.cpuSplit, err)
	}
}

// TestCPUSplitPrintsEachRunsSides runs the throughput phase at a tiny scale
// with -cpu-split and checks its lines: one per run, the sides adding up to
// the process's CPU per message, most of it the bridge's.
func TestCPUSplitPrintsEachRunsSides(t *testing.T) {
	var stdout bytes.Buffer
	var stderr lockedBuffer
	if code := Main(t.Context(), []string{"-phases", "throughput", "-rooms", "1,2,5", "-msgs", "500", "-cpu-split", "-timeout", "2m"},
		&stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	num := `([0-9]+\.[0-9]{2})`
	perMsg := regexp.MustCompile(`(?m)^  ([0-9]+) rooms: ` + num + ` \+ ` + num + ` ms, `)
	split := regexp.MustCompile(`(?m)^  ([0-9]+) rooms: ` + num + ` \+ ` + num + ` \+ ` + num + ` \+ ` + num + ` \+ ` + num +
		` = ` + num + ` ms: at most ([0-9]+) msgs/s; the bridge alone \(` + num + ` ms\): ([0-9]+) msgs/s$`)
	self := map[string]float64{}
	for _, m := range perMsg.FindAllStringSubmatch(out, -1) {
		self[m[1]] = atof(t, m[2])
	}
	got := split.FindAllStringSubmatch(out, -1)
	if len(got) != 3 {
		t.Fatalf("%d lines of the split, want 3; stdout:\n%s", len(got), out)
	}
	for i, m := range got {
		rooms := []string{"1", "2", "5"}[i]
		if m[1] != rooms {
			t.Errorf("line %d is of %s rooms, want %s", i, m[1], rooms)
		}
		bridge, slack, people, rt, emu, all := atof(t, m[2]), atof(t, m[3]), atof(t, m[4]), atof(t, m[5]), atof(t, m[6]), atof(t, m[7])
		// Each figure is rounded to 0.01 ms.
		if sum := bridge + slack + people + rt; math.Abs(sum-self[rooms]) > 0.03 {
			t.Errorf("%s rooms: the sides add up to %.2f ms, the process used %.2f", rooms, sum, self[rooms])
		}
		if math.Abs(bridge+slack+people+rt+emu-all) > 0.03 {
			t.Errorf("%s rooms: total %.2f is not the sum of its parts: %s", rooms, all, m[0])
		}
		if bridge <= slack+people {
			t.Errorf("%s rooms: the bridge's %.2f ms is not most of the work: %s", rooms, bridge, m[0])
		}
		// The store's writer goroutine is the bridge's: were its label
		// lost, its work (a third of the bridge's) would count as the
		// runtime's.
		if rt >= bridge/3 {
			t.Errorf("%s rooms: the runtime's %.2f ms is over a third of the bridge's %.2f: %s", rooms, rt, bridge, m[0])
		}
	}
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
