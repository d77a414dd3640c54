package controller_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
)

// TestOperatorsAcrossReplicas: two fleetd on one database share who may
// call them: a token made through one authenticates on the other (and,
// revoked there, stops working on the first), an audit entry recorded by
// one is listed by the other, and a live-feed ticket issued by one opens
// the feed on the other, once.
func TestOperatorsAcrossReplicas(t *testing.T) {
	extra := `
database: {url: "` + testutil.Postgres(t) + `"}
`
	a := controllertest.Start(t, extra)
	b := controllertest.Start(t, extra)
	ctx := context.Background()

	made, err := a.API.CreateToken(ctx, rest.CreateToken{Name: "alice", Role: rest.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	aliceOn := func(f *controllertest.Fleetd) *client.Client {
		c, err := client.New("http://"+f.HTTP, made.Token, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if w, err := aliceOn(b).Whoami(ctx); err != nil || w != (rest.Whoami{Name: "alice", Role: rest.RoleOperator}) {
		t.Fatalf("token made on A, used on B: %+v, %v", w, err)
	}
	toks, err := b.API.Tokens(ctx)
	if err != nil || !slices.ContainsFunc(toks, func(ti rest.TokenInfo) bool { return ti.Name == "alice" && !ti.Fixed }) {
		t.Fatalf("B's tokens: %+v, %v", toks, err)
	}

	// The audit entry of the token made on A, listed by B.
	testutil.WaitFor(t, "A's audit entry on B", 10*time.Second, func() bool {
		l, err := b.API.Audit(ctx, rest.AuditQuery{})
		return err == nil && slices.ContainsFunc(l.Entries, func(e rest.AuditEntry) bool {
			return e.Action == "token.create" && e.Target == "alice" && e.Operator == "test" && e.Outcome == rest.OutcomeOK
		})
	})

	// A ticket from A opens B's live feed, and only once.
	lt, err := a.API.LiveTicket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	feed := func(f *controllertest.Fleetd) int {
		t.Helper()
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req, _ := http.NewRequestWithContext(rctx, "GET", "http://"+f.HTTP+rest.Prefix+"/detections/stream?ticket="+url.QueryEscape(lt.Ticket), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Errorf("live feed: content type %q", resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode
	}
	if code := feed(b); code != http.StatusOK {
		t.Fatalf("ticket issued by A on B's live feed: %d", code)
	}
	if code := feed(a); code != http.StatusUnauthorized {
		t.Fatalf("ticket used on B, again on A: %d, want 401", code)
	}

	// Revoked through B: refused by A.
	if err := b.API.RevokeToken(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := aliceOn(a).Whoami(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("token revoked on B, used on A: %v", err)
	}
}
