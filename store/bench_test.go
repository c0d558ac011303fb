package store_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store"
)

// benchConvs is how many conversations the benchmarks spread messages over.
const benchConvs = 100

// benchKeys makes the benchmark conversations, mapped to Botpress
// conversations as the bridge's are, and returns their keys.
func benchKeys(b testing.TB, db *store.DB) []bridge.ConvKey {
	b.Helper()
	keys := make([]bridge.ConvKey, benchConvs)
	for i := range keys {
		keys[i] = convKey("C" + strconv.Itoa(i))
		mapConv(b, db, keys[i], "setup-"+strconv.Itoa(i), chat.ConversationID("conv_"+strconv.Itoa(i)))
	}
	return keys
}

// benchItems enqueues n inbound messages over the benchmark conversations.
func benchItems(b *testing.B, db *store.DB, n int) []bridge.OutboxItem {
	b.Helper()
	keys := benchKeys(b, db)
	items := make([]bridge.OutboxItem, n)
	for i := range items {
		key := keys[i%len(keys)]
		items[i] = enqueue(b, db, key, newInbound("ev"+strconv.Itoa(i), key.Room, time.Now()))
	}
	return items
}

func BenchmarkEnqueueInbound(b *testing.B) {
	db, _ := newDB(b)
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

func BenchmarkEnqueueInboundParallel(b *testing.B) {
	db, _ := newDB(b)
	keys := benchKeys(b, db)
	var next atomic.Int64
	b.ReportAllocs()
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

func BenchmarkMarkInboundSent(b *testing.B) {
	db, _ := newDB(b)
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

func BenchmarkMarkInboundSentParallel(b *testing.B) {
	db, _ := newDB(b)
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

func BenchmarkAddDelivery(b *testing.B) {
	db, _ := newDB(b)
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

func BenchmarkAddDeliveryParallel(b *testing.B) {
	db, _ := newDB(b)
	convs := benchItems(b, db, benchConvs)
	var next atomic.Int64
	b.ReportAllocs()
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

// message is the store's share of one message answered once: enqueue, mark
// sent, store the reply, count the post attempt, mark it posted.
func message(b *testing.B, db *store.DB, key bridge.ConvKey, i int) error {
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

func BenchmarkMessage(b *testing.B) {
	db, _ := newDB(b)
	keys := benchKeys(b, db)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := message(b, db, keys[i%len(keys)], i); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkMessageParallel(b *testing.B) {
	db, _ := newDB(b)
	keys := benchKeys(b, db)
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			if err := message(b, db, keys[i%len(keys)], i); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkEnqueueInboundContended has 64 goroutines writing at once, as the
// bridge's workers, streams and adapters do under load.
func BenchmarkEnqueueInboundContended(b *testing.B) {
	db, _ := newDB(b)
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

// BenchmarkNextInboundInABusyConversation reads the next pending message of
// a conversation that has had 10,000 before it: the read must not walk them
// (go test -bench NextInbound ./store/).
func BenchmarkNextInboundInABusyConversation(b *testing.B) {
	db, _ := newDB(b)
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
