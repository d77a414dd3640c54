package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
	"edgefleet/internal/testutil"
)

func TestConfigOperatorRoles(t *testing.T) {
	tests := []struct {
		name, ops, want string
	}{
		{"default admin", `[{name: a, token: 0123456789abcdef}]`, ""},
		{"viewer", `[{name: a, token: 0123456789abcdef, role: viewer}, {name: b, token: 0123456789abcdeg, role: operator}]`, ""},
		{"bad role", `[{name: a, token: 0123456789abcdef}, {name: b, token: 0123456789abcdeg, role: root}]`, `operators[1].role: "root" is not viewer, operator or admin`},
		{"bad name", `[{name: "a b", token: 0123456789abcdef}]`, `operators[0].name: operator: bad name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader("data_dir: x\noperators: " + tt.ops + "\n"))
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// runFleetd runs fleetd on dir until the returned stop is called.
func runFleetd(t *testing.T, dir string) (addr string, stop func()) {
	t.Helper()
	cfg, err := ParseConfig(strings.NewReader(fmt.Sprintf(`
data_dir: %s
http: {listen: "127.0.0.1:0"}
broker: {listen: "127.0.0.1:0"}
operators:
  - {name: root, token: root-token-0123456789}
  - {name: wall, token: wall-token-0123456789, role: viewer}
`, dir)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stopRun := testutil.Serve(t, "fleetd", c.Run, c.Ready())
	return "http://" + c.HTTPAddr(), func() {
		stopRun()
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}

func newClient(t *testing.T, addr, tok string) *client.Client {
	t.Helper()
	c, err := client.New(addr, tok, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOperatorsPersist: a token made over REST and the audit log survive
// a fleetd restart; config roles apply.
func TestOperatorsPersist(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	addr, stop := runFleetd(t, dir)
	root := newClient(t, addr, "root-token-0123456789")
	made, err := root.CreateToken(ctx, rest.CreateToken{Name: "otto", Role: rest.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	wall := newClient(t, addr, "wall-token-0123456789")
	var ce *client.Error
	if _, err := wall.CreateRollout(ctx, rest.CreateRollout{Model: "m@1"}); !errors.As(err, &ce) || ce.Status != 403 || !strings.Contains(ce.Reason, "operator role") {
		t.Fatalf("config viewer creates a rollout: %v", err)
	}
	stop()

	addr, stop = runFleetd(t, dir)
	defer stop()
	otto := newClient(t, addr, made.Token)
	if w, err := otto.Whoami(ctx); err != nil || w.Name != "otto" || w.Role != rest.RoleOperator {
		t.Fatalf("token after restart: %+v, %v", w, err)
	}
	l, err := otto.Audit(ctx, rest.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 2 || l.Entries[0].Action != "rollout.create" || l.Entries[0].Operator != "wall" || l.Entries[0].Outcome != rest.OutcomeRefused ||
		l.Entries[1].Action != "token.create" || l.Entries[1].Operator != "root" || l.Entries[1].Target != "otto" {
		t.Fatalf("audit after restart: %+v", l.Entries)
	}
	ts, err := newClient(t, addr, "root-token-0123456789").Tokens(ctx)
	if err != nil || len(ts) != 3 || ts[0].Name != "otto" || ts[0].LastUsed.IsZero() || !ts[1].Fixed || ts[2].Role != rest.RoleViewer {
		t.Fatalf("tokens: %+v, %v", ts, err)
	}
}
