package store_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/botbridge/botbridge/bridge"
)

func TestWorkspaces(t *testing.T) {
	db, clk := newDB(t)
	ctx := t.Context()
	t2 := bridge.Workspace{Platform: bridge.PlatformSlack, ID: "T2", TeamID: "T2", Name: "Two", BotUserID: "U2", BotID: "B2",
		Scopes: []string{"chat:write", "commands"}, SealedToken: []byte{1, 2, 3}, InstalledAt: clk.Now()}
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
	t.Run("installing again replaces the token", func(t *testing.T) {
		again := t2
		again.SealedToken, again.BotUserID = []byte{9}, "U9"
		if err := db.PutWorkspace(ctx, again); err != nil {
			t.Fatal(err)
		}
		got, _ := db.Workspaces(ctx, bridge.PlatformSlack)
		if len(got) != 2 || !reflect.DeepEqual(got[1], again) {
			t.Errorf("Workspaces = %+v", got)
		}
	})
	t.Run("an uninstalled workspace goes, the others stay", func(t *testing.T) {
		if err := db.DeleteWorkspace(ctx, bridge.PlatformSlack, "T2"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteWorkspace(ctx, bridge.PlatformSlack, "T2"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		got, _ := db.Workspaces(ctx, bridge.PlatformSlack)
		if len(got) != 1 || got[0].ID != "E1" {
			t.Errorf("Workspaces = %+v", got)
		}
	})
}
