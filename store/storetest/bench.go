package storetest

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// The benchmarks of the hot path: each implementation's package has a
// Benchmark function of the same name (without Bench) that calls one of
// them with its Opener, so that the figures of the stores compare:
//
//	go test -tags goolm -run '^$' -bench . ./store/ ./store/postgres/

// benchConvs is how many conversations the benchmarks spread messages over.
const benchConvs = 100

// openBench opens a store for a benchmark, on the real clock.
func openBench(b *testing.B, open Opener) bridge.Store {
	b.Helper()
	return open(b, time.Now).Store
}

// benchKeys makes the benchmark conversations, mapped to Botpress
// conversations as the bridge's are, and returns their keys.
func benchKeys(b testing.TB, db bridge.Store) []bridge.ConvKey {
	b.Helper()
	keys := make([]bridge.ConvKey, benchConvs)
	for i := range keys {
		keys[i] = convKey("C" + strconv.Itoa(i))
		mapConv(b, db, time.Now(), keys[i], "setup-"+strconv.Itoa(i), chat.ConversationID("conv_"+strconv.Itoa(i)))
	}
	return keys
}

// benchItems enqueues n inbound messages over the benchmark conversations.
func benchItems(b *testing.B, db bridge.Store, n int) []bridge.OutboxItem {
	b.Helper()
	keys := benchKeys(b, db)
	items := make([]bridge.OutboxItem, n)
	for i := range items {
		key := keys[i%len(keys)]
		items[i] = enqueue(b, db, key, newInbound("ev"+strconv.Itoa(i), key.Room, time.Now()))
	}
	return items
}

// benchDeliveries adds n deliveries over the benchmark conversations.
func benchDeliveries(b *testing.B, db bridge.Store, n int) []bridge.Delivery {
	b.Helper()
	convs := benchItems(b, db, benchConvs)
	ds := make([]bridge.Delivery, n)
	for i := range ds {
		d, _, err := db.AddDelivery(b.Context(), newDelivery("msg"+strconv.Itoa(i), convs[i%len(convs)].Conversation, time.Now()))
		if err != nil {
			b.Fatal(err)
		}
		ds[i] = d
	}
	return ds
}

// benchFences takes, for one owner, the leases of the benchmark
// conversations' rooms and returns a function giving the context of a
// room's fenced writes, as the bridge's sender and poster make them.
func benchFences(b *testing.B, db bridge.Store) func(room bridge.RoomKey) context.Context {
	b.Helper()
	var names []string
	for i := range benchConvs {
		names = append(names, bridge.LeaseOf(convKey("C"+strconv.Itoa(i)).Room))
	}
	ls, err := db.TakeLeases(b.Context(), "bench", names, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	ctxs := map[string]context.Context{}
	for _, l := range ls {
		ctxs[l.Name] = fence(b.Context(), l)
	}
	return func(room bridge.RoomKey) context.Context {
		ctx, ok := ctxs[bridge.LeaseOf(room)]
		if !ok {
			b.Fatalf("no lease taken for room %s", room)
		}
		return ctx
	}
}

// BenchEnqueueInbound stores inbound messages one after another.
func BenchEnqueueInbound(b *testing.B, open Opener) {
	db := openBench(b, open)
	keys := benchKeys(b, db)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key := keys[i%len(keys)]
		if _, _, err := db.EnqueueInbound(b.Context(), key, newInbound("ev"+strconv.Itoa(i), key.Room, time.Now()), bridge.RoomKey{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchEnqueueInboundParallel stores inbound messages from GOMAXPROCS
// goroutines.
func BenchEnqueueInboundParallel(b *testing.B, open Opener) {
	db := openBench(b, open)
	keys := benchKeys(b, db)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer() // the setup above is no part of the figure
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			key := keys[i%len(keys)]
			if _, _, err := db.EnqueueInbound(b.Context(), key, newInbound("ev"+strconv.Itoa(i), key.Room, time.Now()), bridge.RoomKey{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchEnqueueInboundContended has 32×GOMAXPROCS goroutines storing at
// once, as the bridge's workers, streams and adapters do under load.
func BenchEnqueueInboundContended(b *testing.B, open Opener) {
	db := openBench(b, open)
	keys := benchKeys(b, db)
	ctx := b.Context()
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			key := keys[i%int64(len(keys))]
			if _, _, err := db.EnqueueInbound(ctx, key, newInbound("ev"+strconv.FormatInt(i, 10), key.Room, time.Now()), bridge.RoomKey{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchMarkInboundSent marks stored messages sent one after another.
func BenchMarkInboundSent(b *testing.B, open Opener) {
	db := openBench(b, open)
	items := benchItems(b, db, b.N)
	reply := bridge.ReplyTarget{Room: roomKey("C1", "T1"), MessageID: "m", UserID: "U1"}
	b.ReportAllocs()
	b.ResetTimer()
	for _, it := range items {
		if err := db.MarkInboundSent(b.Context(), it.ID, 1, "msg", true, reply); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchMarkInboundSentFenced marks stored messages sent one after another,
// each under the fence of its room's lease, as the bridge's sender does.
func BenchMarkInboundSentFenced(b *testing.B, open Opener) {
	db := openBench(b, open)
	items := benchItems(b, db, b.N)
	fenced := benchFences(b, db)
	reply := bridge.ReplyTarget{Room: roomKey("C1", "T1"), MessageID: "m", UserID: "U1"}
	b.ReportAllocs()
	b.ResetTimer()
	for _, it := range items {
		if err := db.MarkInboundSent(fenced(it.Inbound.Room), it.ID, 1, "msg", true, reply); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchMarkInboundSentParallel marks stored messages sent from GOMAXPROCS
// goroutines.
func BenchMarkInboundSentParallel(b *testing.B, open Opener) {
	db := openBench(b, open)
	items := benchItems(b, db, b.N)
	reply := bridge.ReplyTarget{Room: roomKey("C1", "T1"), MessageID: "m", UserID: "U1"}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			it := items[next.Add(1)-1]
			if err := db.MarkInboundSent(b.Context(), it.ID, 1, "msg", true, reply); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchAddDelivery stores bot messages one after another.
func BenchAddDelivery(b *testing.B, open Opener) {
	db := openBench(b, open)
	convs := benchItems(b, db, benchConvs)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d := newDelivery("msg"+strconv.Itoa(i), convs[i%len(convs)].Conversation, time.Now())
		if _, _, err := db.AddDelivery(b.Context(), d); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchAddDeliveryParallel stores bot messages from GOMAXPROCS goroutines.
func BenchAddDeliveryParallel(b *testing.B, open Opener) {
	db := openBench(b, open)
	convs := benchItems(b, db, benchConvs)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer() // the setup above is no part of the figure
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			d := newDelivery("msg"+strconv.Itoa(i), convs[i%len(convs)].Conversation, time.Now())
			if _, _, err := db.AddDelivery(b.Context(), d); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchMarkDelivered marks stored bot messages posted one after another.
func BenchMarkDelivered(b *testing.B, open Opener) {
	db := openBench(b, open)
	ds := benchDeliveries(b, db, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i, d := range ds {
		if err := db.MarkDelivered(b.Context(), d.MessageID, bridge.Parts{"p" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchMarkDeliveredFenced marks stored bot messages posted one after
// another, each under the fence of its room's lease, as the bridge's poster
// does.
func BenchMarkDeliveredFenced(b *testing.B, open Opener) {
	db := openBench(b, open)
	ds := benchDeliveries(b, db, b.N)
	fenced := fencedByConversation(b, db)
	b.ReportAllocs()
	b.ResetTimer()
	for i, d := range ds {
		if err := db.MarkDelivered(fenced(d.Conversation), d.MessageID, bridge.Parts{"p" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// fencedByConversation returns benchFences by conversation id, the lease
// being that of the conversation's room (a delivery's target room need not
// be it).
func fencedByConversation(b *testing.B, db bridge.Store) func(conv int64) context.Context {
	b.Helper()
	fenced := benchFences(b, db)
	ctxs := map[int64]context.Context{}
	return func(conv int64) context.Context {
		if ctx, ok := ctxs[conv]; ok {
			return ctx
		}
		c, err := db.Conversation(b.Context(), conv)
		if err != nil {
			b.Fatal(err)
		}
		ctxs[conv] = fenced(c.Key.Room)
		return ctxs[conv]
	}
}

// BenchMarkDeliveredParallel marks stored bot messages posted from
// GOMAXPROCS goroutines.
func BenchMarkDeliveredParallel(b *testing.B, open Opener) {
	db := openBench(b, open)
	ds := benchDeliveries(b, db, b.N)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := ds[next.Add(1)-1]
			if err := db.MarkDelivered(b.Context(), d.MessageID, bridge.Parts{"p"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// message is the store's share of one message answered once: enqueue, mark
// sent, store the reply, mark it posted.
func message(b *testing.B, db bridge.Store, key bridge.ConvKey, i int) error {
	ctx := b.Context()
	it, _, err := db.EnqueueInbound(ctx, key, newInbound("ev"+strconv.Itoa(i), key.Room, time.Now()), bridge.RoomKey{})
	if err != nil {
		return err
	}
	reply := bridge.ReplyTarget{Room: key.Room, MessageID: it.Inbound.MessageID, UserID: "U1"}
	if err := db.MarkInboundSent(ctx, it.ID, 1, "msg", true, reply); err != nil {
		return err
	}
	id := chat.MessageID("bot" + strconv.Itoa(i))
	if _, _, err := db.AddDelivery(ctx, newDelivery(string(id), it.Conversation, time.Now())); err != nil {
		return err
	}
	return db.MarkDelivered(ctx, id, bridge.Parts{"p" + strconv.Itoa(i)})
}

// fencedMessage is the store's share of one message answered once as the
// bridge runs it with leases: enqueue, mark sent under the fence of the
// conversation's lease, store the reply, claim it and mark it posted under
// the fence.
func fencedMessage(b *testing.B, db bridge.Store, fenced func(bridge.RoomKey) context.Context, key bridge.ConvKey, i int) error {
	ctx := b.Context()
	it, _, err := db.EnqueueInbound(ctx, key, newInbound("ev"+strconv.Itoa(i), key.Room, time.Now()), bridge.RoomKey{})
	if err != nil {
		return err
	}
	fctx := fenced(key.Room)
	reply := bridge.ReplyTarget{Room: key.Room, MessageID: it.Inbound.MessageID, UserID: "U1"}
	if err := db.MarkInboundSent(fctx, it.ID, 1, "msg", true, reply); err != nil {
		return err
	}
	id := chat.MessageID("bot" + strconv.Itoa(i))
	d := newDelivery(string(id), it.Conversation, time.Now())
	d.Target = reply
	if _, _, err := db.AddDelivery(ctx, d); err != nil {
		return err
	}
	if c, err := db.ClaimDelivery(fctx, id); err != nil || c.Behind {
		return fmt.Errorf("claim delivery %s: %+v, %w", id, c, err)
	}
	return db.MarkDelivered(fctx, id, bridge.Parts{"p" + strconv.Itoa(i)})
}

// BenchMessage runs the store's share of messages answered, one after
// another, and reports msgs/s.
func BenchMessage(b *testing.B, open Opener) {
	db := openBench(b, open)
	keys := benchKeys(b, db)
	benchMessages(b, func(i int) error { return message(b, db, keys[i%len(keys)], i) })
}

// BenchMessageParallel runs the store's share of messages answered from
// GOMAXPROCS goroutines, and reports msgs/s.
func BenchMessageParallel(b *testing.B, open Opener) {
	db := openBench(b, open)
	keys := benchKeys(b, db)
	benchMessagesParallel(b, func(i int) error { return message(b, db, keys[i%len(keys)], i) })
}

// BenchMessageFenced runs the store's share of messages answered as the
// bridge runs it with leases (fencedMessage), one after another, and
// reports msgs/s.
func BenchMessageFenced(b *testing.B, open Opener) {
	db := openBench(b, open)
	keys := benchKeys(b, db)
	fenced := benchFences(b, db)
	benchMessages(b, func(i int) error { return fencedMessage(b, db, fenced, keys[i%len(keys)], i) })
}

// BenchMessageFencedParallel runs fencedMessage from GOMAXPROCS
// goroutines, and reports msgs/s.
func BenchMessageFencedParallel(b *testing.B, open Opener) {
	db := openBench(b, open)
	keys := benchKeys(b, db)
	fenced := benchFences(b, db)
	benchMessagesParallel(b, func(i int) error { return fencedMessage(b, db, fenced, keys[i%len(keys)], i) })
}

// benchMessages runs message i for i = 0, 1, … one after another, and
// reports msgs/s.
func benchMessages(b *testing.B, message func(i int) error) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := message(i); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// benchMessagesParallel runs message i for i = 1, 2, … from GOMAXPROCS
// goroutines, and reports msgs/s.
func benchMessagesParallel(b *testing.B, message func(i int) error) {
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer() // the setup before is no part of the figure
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := message(int(next.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchNextInboundInABusyConversation reads the next pending message of a
// conversation that has had 10,000 before it: the read must not walk them.
func BenchNextInboundInABusyConversation(b *testing.B, open Opener) {
	db := openBench(b, open)
	key := convKey("C1")
	for i := range 10000 {
		it := enqueue(b, db, key, newInbound("old"+strconv.Itoa(i), key.Room, time.Now()))
		if err := db.MarkInboundSent(b.Context(), it.ID, 1, "m", true, bridge.ReplyTarget{}); err != nil {
			b.Fatal(err)
		}
	}
	it := enqueue(b, db, key, newInbound("next", key.Room, time.Now()))
	b.ReportAllocs()
	for b.Loop() {
		got, err := db.NextInbound(b.Context(), it.Conversation)
		if err != nil || got.ID != it.ID {
			b.Fatalf("NextInbound = %d, %v", got.ID, err)
		}
	}
}
