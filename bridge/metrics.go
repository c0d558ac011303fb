package bridge

import "time"

// Metrics receives what the engine counts and times. Implementations must be
// safe for concurrent use and must not block.
type Metrics interface {
	// Inbound counts an inbound message by result: stored, duplicate, sent,
	// failed.
	Inbound(p Platform, bot, result string)
	// Outbound counts a bot message by result: posted, failed.
	Outbound(p Platform, bot, result string)
	// DeliveryLag times a bot message from its creation to its post.
	DeliveryLag(p Platform, bot string, d time.Duration)
	// StreamReconnect counts a conversation stream that went down.
	StreamReconnect(bot string)
	// Listeners reports the number of open conversation streams.
	Listeners(n int)
}

type nopMetrics struct{}

func (nopMetrics) Inbound(Platform, string, string)            {}
func (nopMetrics) Outbound(Platform, string, string)           {}
func (nopMetrics) DeliveryLag(Platform, string, time.Duration) {}
func (nopMetrics) StreamReconnect(string)                      {}
func (nopMetrics) Listeners(int)                               {}
