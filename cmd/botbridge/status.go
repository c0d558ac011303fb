package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/botbridge/botbridge/bridge"
)

// cmdStatus prints the replicas sharing the store of a configuration, the
// leases each holds, and the work that waits, by lease.
func cmdStatus(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	path := fs.String("config", "botbridge.yaml", "configuration `file` of the replicas")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	st, err := OpenStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	return PrintStatus(ctx, st, stdout)
}

// PrintStatus writes what the store says of the replicas sharing it: who
// is alive, which leases each holds and until when (by the store's clock),
// the shards no one holds, and the messages waiting to be sent to Botpress
// and the replies waiting to be posted, by lease and who holds it. It only
// reads.
func PrintStatus(ctx context.Context, st bridge.Store, w io.Writer) error {
	leases, now, err := st.Leases(ctx)
	if err != nil {
		return err
	}
	inbound, err := st.PendingInbound(ctx, 0)
	if err != nil {
		return err
	}
	deliveries, err := st.PendingDeliveries(ctx, 0)
	if err != nil {
		return err
	}
	switch s := st.(type) {
	case fmt.Stringer:
		fmt.Fprintf(w, "store: %s\n", s)
	case interface{ Path() string }:
		fmt.Fprintf(w, "store: sqlite %s\n", s.Path())
	}
	fmt.Fprintf(w, "store's clock: %s\n\n", now.Format(time.RFC3339))

	type replica struct {
		name    string
		shards  int
		leaders []string
		until   time.Time
	}
	byOwner := map[string]*replica{}
	holder := map[string]bridge.Lease{}
	for _, l := range leases {
		live := l.Expires.After(now)
		if o, ok := strings.CutPrefix(l.Name, "replica:"); ok {
			if live {
				byOwner[o] = &replica{name: o, until: l.Expires}
			}
			continue
		}
		holder[l.Name] = l
	}
	for _, l := range holder {
		if !l.Expires.After(now) {
			continue
		}
		r := byOwner[l.Owner]
		if r == nil {
			r = &replica{name: l.Owner, until: l.Expires} // its presence expired first
			byOwner[l.Owner] = r
		}
		if strings.HasPrefix(l.Name, "shard:") {
			r.shards++
		} else {
			r.leaders = append(r.leaders, l.Name)
		}
	}
	var rs []*replica
	for _, r := range byOwner {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *replica) int { return strings.Compare(a.name, b.name) })
	fmt.Fprintf(w, "replicas alive: %d\n", len(rs))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, r := range rs {
		what := fmt.Sprintf("%d of %d shards", r.shards, bridge.Shards)
		if len(r.leaders) > 0 {
			slices.Sort(r.leaders)
			what += ", " + strings.Join(r.leaders, ", ")
		}
		fmt.Fprintf(tw, "  %s\t%s\tpresence expires in %s\n", r.name, what, r.until.Sub(now).Round(100*time.Millisecond))
	}
	tw.Flush()

	var free []string
	for _, name := range bridge.ShardLeases() {
		l, ok := holder[name]
		switch {
		case !ok:
			free = append(free, name+" (never taken)")
		case l.Expires.IsZero():
			free = append(free, fmt.Sprintf("%s (given up by %s)", name, l.Owner))
		case !l.Expires.After(now):
			free = append(free, fmt.Sprintf("%s (%s's, expired %s ago)", name, l.Owner, now.Sub(l.Expires).Round(time.Second)))
		}
	}
	if len(free) == 0 {
		fmt.Fprintf(w, "shards held by no one: none\n")
	} else {
		fmt.Fprintf(w, "shards held by no one: %d: %s\n", len(free), strings.Join(free, ", "))
	}

	type work struct {
		send, post       int
		oldSend, oldPost time.Time
	}
	waiting := map[string]*work{}
	at := func(lease string) *work {
		if waiting[lease] == nil {
			waiting[lease] = &work{}
		}
		return waiting[lease]
	}
	oldest := func(t *time.Time, c time.Time) {
		if t.IsZero() || c.Before(*t) {
			*t = c
		}
	}
	for _, it := range inbound {
		x := at(bridge.LeaseOf(it.Inbound.Room))
		x.send++
		oldest(&x.oldSend, it.CreatedAt)
	}
	for _, d := range deliveries {
		x := at(bridge.LeaseOf(d.Target.Room))
		x.post++
		oldest(&x.oldPost, d.ReceivedAt)
	}
	fmt.Fprintf(w, "\nwaiting: %d messages to send to Botpress, %d replies to post\n", len(inbound), len(deliveries))
	var names []string
	for name := range waiting {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		x := waiting[name]
		who := "held by no one"
		if l, ok := holder[name]; ok && l.Expires.After(now) {
			who = "held by " + l.Owner
		}
		line := fmt.Sprintf("  %s (%s):", name, who)
		if x.send > 0 {
			line += fmt.Sprintf(" %d to send, the oldest stored %s ago;", x.send, now.Sub(x.oldSend).Round(100*time.Millisecond))
		}
		if x.post > 0 {
			line += fmt.Sprintf(" %d to post, the oldest received %s ago;", x.post, now.Sub(x.oldPost).Round(100*time.Millisecond))
		}
		fmt.Fprintln(tw, strings.TrimSuffix(line, ";"))
	}
	return tw.Flush()
}
