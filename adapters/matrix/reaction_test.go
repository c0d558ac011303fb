package matrix_test

import (
	"slices"
	"testing"
)

func TestReactionOnTheBotsMessageReachesTheBot(t *testing.T) {
	r := newRig(t, shared, false)
	r.start()
	alice := newPerson(t, shared, "alice", false)
	room := dm(alice, r, false)
	asked := alice.say(room, "hello")
	reply := alice.wait("the bot's reply", fromWith(r.acc.ID, room, "echo: hello"))

	// A reaction to her own message first: the bot never gets it, and the
	// one to the bot's reply comes after it.
	if _, err := alice.cli.SendReaction(t.Context(), room, asked, "👎"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.cli.SendReaction(t.Context(), room, reply.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	alice.wait("the bot's answer to the reaction", fromWith(r.acc.ID, room, "echo: 👍"))
	got := r.bot.texts()
	if slices.Contains(got, "👎") || len(got) != 2 {
		t.Errorf("the bot got %q, want the message and the reaction to its reply", got)
	}
	r.bot.mu.Lock()
	md := r.bot.got[len(r.bot.got)-1].Metadata
	r.bot.mu.Unlock()
	if md["reaction"] != "👍" || md["reactionMessageId"] != string(reply.ID) {
		t.Errorf("metadata %v", md)
	}
}
