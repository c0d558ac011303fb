package store_test

import (
	"testing"

	"github.com/botbridge/botbridge/store/storetest"
)

// The benchmarks are the contract suite's, on SQLite; store/postgres has
// the same on PostgreSQL.

func BenchmarkEnqueueInbound(b *testing.B) { storetest.BenchEnqueueInbound(b, openSubject) }
func BenchmarkEnqueueInboundParallel(b *testing.B) {
	storetest.BenchEnqueueInboundParallel(b, openSubject)
}
func BenchmarkEnqueueInboundContended(b *testing.B) {
	storetest.BenchEnqueueInboundContended(b, openSubject)
}
func BenchmarkMarkInboundSent(b *testing.B) { storetest.BenchMarkInboundSent(b, openSubject) }
func BenchmarkMarkInboundSentParallel(b *testing.B) {
	storetest.BenchMarkInboundSentParallel(b, openSubject)
}
func BenchmarkAddDelivery(b *testing.B)         { storetest.BenchAddDelivery(b, openSubject) }
func BenchmarkAddDeliveryParallel(b *testing.B) { storetest.BenchAddDeliveryParallel(b, openSubject) }
func BenchmarkMarkDelivered(b *testing.B)       { storetest.BenchMarkDelivered(b, openSubject) }
func BenchmarkMarkDeliveredParallel(b *testing.B) {
	storetest.BenchMarkDeliveredParallel(b, openSubject)
}
func BenchmarkMessage(b *testing.B)         { storetest.BenchMessage(b, openSubject) }
func BenchmarkMessageParallel(b *testing.B) { storetest.BenchMessageParallel(b, openSubject) }

// The fenced benchmarks run the writes of the sender and the poster under
// the fence of a lease, as the bridge does.

func BenchmarkMarkInboundSentFenced(b *testing.B) {
	storetest.BenchMarkInboundSentFenced(b, openSubject)
}
func BenchmarkMarkDeliveredFenced(b *testing.B) { storetest.BenchMarkDeliveredFenced(b, openSubject) }
func BenchmarkMessageFenced(b *testing.B)       { storetest.BenchMessageFenced(b, openSubject) }
func BenchmarkMessageFencedParallel(b *testing.B) {
	storetest.BenchMessageFencedParallel(b, openSubject)
}

// BenchmarkNextInboundInABusyConversation: the read of the next message
// must not walk the conversation's past (go test -bench NextInbound ./store/).
func BenchmarkNextInboundInABusyConversation(b *testing.B) {
	storetest.BenchNextInboundInABusyConversation(b, openSubject)
}
