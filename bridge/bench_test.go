package bridge_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// The benchmarks run the bridge on a real SQLite file against the emulator's
// echo bot over loopback HTTP, in one process:
//
//	go test -tags goolm -run '^$' -bench . -benchtime 2000x ./bridge/

func quiet(cfg *bridge.Config) { cfg.Logger = slog.New(slog.DiscardHandler) }

// reportLatencies adds p50 and p99 of the samples as metrics.
func reportLatencies(b *testing.B, samples []time.Duration) {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	if len(samples) == 0 {
		return
	}
	p := func(q float64) float64 {
		return float64(samples[int(q*float64(len(samples)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}

// BenchmarkDirectRoundTrip is the baseline: createMessage with the Chat API
// client, then the echo bot's reply seen on the conversation's stream.
func BenchmarkDirectRoundTrip(b *testing.B) {
	r := newRig(b, chattest.EchoBot())
	ctx := b.Context()
	key, err := r.signer.Key("bench-user")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.client.GetOrCreateUser(ctx, key, chat.UserProfile{Name: "Bench"}); err != nil {
		b.Fatal(err)
	}
	conv, err := r.client.CreateConversation(ctx, key, "")
	if err != nil {
		b.Fatal(err)
	}
	replies := make(chan struct{}, 16)
	connected := make(chan struct{}, 1)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- r.client.Listen(lctx, key, conv.ID, chat.ListenHandler{
			OnConnect: func(context.Context) { connected <- struct{}{} },
			OnSignal: func(_ context.Context, s chat.Signal) {
				if m, ok := s.(chat.MessageCreated); ok && m.IsBot {
					replies <- struct{}{}
				}
			},
		})
	}()
	defer func() { cancel(); <-done }()
	<-connected
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := r.client.CreateMessage(ctx, key, chat.CreateMessageRequest{ConversationID: conv.ID,
			Payload: chat.Text{Text: fmt.Sprintf("ping %d", i)}}); err != nil {
			b.Fatal(err)
		}
		<-replies
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, samples)
}

// BenchmarkBridgeRoundTrip is the same round trip through the whole bridge:
// test adapter → store → Botpress → stream → store → test adapter.
func BenchmarkBridgeRoundTrip(b *testing.B) {
	r := newRig(b, chattest.EchoBot())
	r.tweak = quiet
	r.start()
	posts := r.ad().Subscribe(16)
	r.say(dm("warm up"))
	<-posts
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		r.say(dm(fmt.Sprintf("ping %d", i)))
		<-posts
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, samples)
}

// BenchmarkBridgeThroughput sends b.N messages spread over many rooms as fast
// as the adapter can hand them in, and reports replies per second through
// the whole bridge with its durable store.
func BenchmarkBridgeThroughput(b *testing.B) {
	for _, rooms := range []int{1, 100} {
		b.Run(fmt.Sprintf("rooms=%d", rooms), func(b *testing.B) {
			r := newRig(b, chattest.EchoBot())
			r.tweak = quiet
			r.start()
			posts := r.ad().Subscribe(b.N + rooms)
			// One warm-up message per room opens its conversation and stream.
			for i := range rooms {
				r.say(dmIn(i, "warm up"))
			}
			for range rooms {
				<-posts
			}
			b.ResetTimer()
			start := time.Now()
			go func() {
				for i := range b.N {
					in := dmIn(i%rooms, fmt.Sprintf("load %d", i))
					if err := r.ad().Say(b.Context(), in); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			for range b.N {
				<-posts
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}

// dmIn is a DM from a different person in each of many rooms.
func dmIn(room int, text string) bridge.Inbound {
	in := dm(text)
	in.Room.Room = fmt.Sprintf("D%04d", room)
	in.Sender = bridge.Sender{ID: fmt.Sprintf("U%04d", room), Name: "Load"}
	return in
}
