package bridge

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"time"
)

// Several processes (replicas) may share one store. They share its work
// through leases: each conversation belongs to a shard, computed from its
// platform and room (LeaseOf), and a shard's sending and posting are done
// by the one process that holds the shard's lease. A lease has an expiry,
// by the store's clock, and a fencing token, new each time the lease
// changes hands: the sender's and the poster's writes carry the token of
// the lease they act under (WithFence), and the store refuses them with
// ErrFenced once the lease has expired or changed hands, so that a process
// that stalled past its lease can no longer record anything. A process
// that dies loses its leases when they expire; the others take them over.
//
// One process on its own store (SQLite) holds every lease: the code path
// is the same, tokens are checked all the same.

// ErrFenced: a write was refused because the lease it was made under (see
// WithFence) is no longer held with its token: it expired, or another
// process took it over. The work is another process's now.
var ErrFenced = errors.New("fenced off: the lease this write was made under is held by another process or expired")

// DefaultLeaseTTL and DefaultLeaseRenew are the leases' time to live and
// how often they are renewed, unless configured. A replica killed just
// after it renewed its leases loses them DefaultLeaseTTL later; the others
// resume its work a fraction of a second after that (botbridge-bench's
// failover_seconds): within 15 seconds of its death.
const (
	DefaultLeaseTTL   = 12 * time.Second
	DefaultLeaseRenew = 4 * time.Second
)

// Shards is how many shards the conversations of the hashed platforms are
// spread over. It is part of what is stored (each conversation's lease), so
// it never changes.
const Shards = 64

// MatrixLease is the lease of every Matrix room, and of the Matrix sync
// loop: the end-to-end encryption of a Matrix account keeps state in one
// process, which must be the one that both receives (syncs) and posts.
const MatrixLease = "matrix.sync"

// shardPrefix starts the names of the shards' leases: "shard:0".."shard:63".
const shardPrefix = "shard:"

// LeaseOf returns the name of the lease that owns the work of room (its top
// level: every thread of a room, every generation of its conversations, is
// in one shard, so that one process posts to the room, in order): the
// Matrix lease for Matrix rooms, else "shard:N" with N a hash of platform
// and room.
func LeaseOf(room RoomKey) string {
	if room.Platform == PlatformMatrix {
		return MatrixLease
	}
	h := fnv.New32a()
	h.Write([]byte(room.Platform))
	h.Write([]byte{0})
	h.Write([]byte(room.Room))
	return ShardLease(int(h.Sum32() % Shards))
}

// ShardLease returns the name of shard n's lease.
func ShardLease(n int) string { return shardPrefix + strconv.Itoa(n) }

// ShardLeases returns the names of every shard's lease, in order.
func ShardLeases() []string {
	out := make([]string, Shards)
	for i := range out {
		out[i] = ShardLease(i)
	}
	return out
}

// Lease is a process's right, until it expires, to the work a name stands
// for (a shard, the Matrix sync loop), as the store keeps it.
type Lease struct {
	Name string
	// Owner identifies the process that holds or last held it.
	Owner string
	// Token is the fencing token: assigned from a sequence each time the
	// lease is taken (never when it is renewed), never reused.
	Token int64
	// Expires is when it ends unless renewed, by the store's clock.
	Expires time.Time
}

// Fence is the lease a write is made under: its name and token.
type Fence struct {
	Lease string
	Token int64
}

type fenceKey struct{}

// WithFence returns ctx carrying f: the fenced writes of the store made
// with it succeed only while lease f.Lease is held with token f.Token, and
// fail with ErrFenced otherwise. The fence goes in the context so that a
// write made on the way out (context.WithoutCancel) carries it too.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence ctx carries, if any. Stores call it in their
// fenced writes; a write without a fence is not checked (tools and tests
// that own the whole store).
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// Claim is what ClaimDelivery found of a delivery about to be posted.
type Claim struct {
	// Attempts counts the claims made before this one: a delivery claimed
	// before (by this process before a restart, or by one that lost its
	// lease) may be on the platform already.
	Attempts int
	// Behind is set, and nothing claimed, when an earlier delivery of the
	// same room (a lower Seq) is still pending: it is to be posted first.
	Behind bool
}
