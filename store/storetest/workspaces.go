package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
)

// testWorkspaces checks the Slack adapter's part of the store: the
// workspaces that installed the app through OAuth.
func testWorkspaces(t *testing.T, open Opener) {
	e := newEnv(t, open)
	db, clk := e.db, e.clk
	ctx := t.Context()
	t2 := bridge.Workspace{Platform: bridge.PlatformSlack, ID: "T2", TeamID: "T2", Name: "Two", BotUserID: "U2", BotID: "B2",
		Scopes: []string{"chat:write", "commands"}, SealedToken: []byte{1, 2, 3, 0, 255}, InstalledAt: clk.Now()}
	e1 := bridge.Workspace{Platform: bridge.PlatformSlack, ID: "E1", EnterpriseID: "E1", OrgWide: true, BotUserID: "U3",
		SealedToken: []byte{4}, InstalledAt: clk.Now()}
	for _, w := range []bridge.Workspace{t2, e1} {
		if err := db.PutWorkspace(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("stored workspaces read back by id", func(t *testing.T) {
		got, err := db.Workspaces(ctx, bridge.PlatformSlack)
		if err != nil || !reflect.DeepEqual(got, []bridge.Workspace{e1, t2}) {
			t.Errorf("Workspaces = %+v, %v", got, err)
		}
		if other, err := db.Workspaces(ctx, bridge.PlatformMatrix); err != nil || len(other) != 0 {
			t.Errorf("another platform's: %+v, %v", other, err)
		}
	})
	t.Run("installing again replaces the install", func(t *testing.T) {
		again := t2
		again.SealedToken, again.BotUserID, again.Scopes = []byte{9}, "U9", nil
		again.InstalledAt = clk.Advance(1500 * time.Millisecond)
		if err := db.PutWorkspace(ctx, again); err != nil {
			t.Fatal(err)
		}
		got, _ := db.Workspaces(ctx, bridge.PlatformSlack)
		if len(got) != 2 || !reflect.DeepEqual(got[1], again) {
			t.Errorf("Workspaces = %+v", got)
		}
	})
	t.Run("no id or no sealed token is refused", func(t *testing.T) {
		for _, w := range []bridge.Workspace{{Platform: bridge.PlatformSlack, SealedToken: []byte{1}}, {Platform: bridge.PlatformSlack, ID: "T3"}} {
			if err := db.PutWorkspace(ctx, w); err == nil || errors.Is(err, bridge.ErrStore) {
				t.Errorf("PutWorkspace(%+v): %v; want a plain error", w, err)
			}
		}
	})
	t.Run("an uninstalled workspace goes, the others stay", func(t *testing.T) {
		if err := db.DeleteWorkspace(ctx, bridge.PlatformSlack, "T2"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteWorkspace(ctx, bridge.PlatformSlack, "T2"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		if err := db.DeleteWorkspace(ctx, bridge.PlatformMatrix, "E1"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("delete on another platform: %v, want ErrNotFound", err)
		}
		got, _ := db.Workspaces(ctx, bridge.PlatformSlack)
		if len(got) != 1 || got[0].ID != "E1" {
			t.Errorf("Workspaces = %+v", got)
		}
	})
}
