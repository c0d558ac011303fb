package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestDemoShowsALateReply(t *testing.T) {
	stdin, typing := io.Pipe()
	var out, errOut lockedBuffer
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"demo"}, stdin, &out, &errOut) }()

	if _, err := io.WriteString(typing, "later 0.5\nhello\n"); err != nil {
		t.Fatal(err)
	}
	late := "bot> Here is the late reply you asked for 500ms ago."
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), late) {
		if time.Now().After(deadline) {
			t.Fatalf("no late reply in the output:\n%s\nstderr:\n%s", out.String(), errOut.String())
		}
		select {
		case code := <-done:
			t.Fatalf("demo exited with %d before the late reply; stderr:\n%s", code, errOut.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	typing.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut.String())
	}
	got := out.String()
	ack := strings.Index(got, "bot> OK, I will answer in 500ms.")
	hello := strings.Index(got, "bot> hello")
	if ack < 0 || hello < 0 || !(ack < hello && hello < strings.Index(got, late)) {
		t.Errorf("want the acknowledgement, the echo of hello, then the late reply; output:\n%s", got)
	}
}
