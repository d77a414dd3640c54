package main

import (
	"encoding/json"
	"strings"
	"testing"

	"edgefleet/fleet/api/rest"
)

// TestTokensAndAudit makes a viewer token, uses it, revokes it and reads
// the audit log, all through fleetctl against the real REST server.
func TestTokensAndAudit(t *testing.T) {
	url := fleetd(t)
	admin := []string{"--server", url, "--token", token}
	code, out, errOut := fleetctl(t, append([]string{"tokens", "create", "--name", "alice", "--role", "viewer"}, admin...)...)
	if code != 0 {
		t.Fatalf("tokens create: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	alice := lines[len(lines)-1]
	if !strings.HasPrefix(alice, "efo_") || !strings.Contains(out, "shown only now") {
		t.Fatalf("tokens create printed %q", out)
	}
	code, out, _ = fleetctl(t, append([]string{"tokens", "list"}, admin...)...)
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "viewer") || !strings.Contains(out, "fleetd.yaml") || strings.Contains(out, alice) {
		t.Fatalf("tokens list: %d\n%s", code, out)
	}
	// The viewer reads, and is refused what needs an admin.
	if code, out, errOut = fleetctl(t, "devices", "list", "--server", url, "--token", alice); code != 0 || !strings.Contains(out, "cam-1") {
		t.Fatalf("viewer lists devices: %d %s %s", code, out, errOut)
	}
	code, _, errOut = fleetctl(t, "tokens", "create", "--name", "mallory", "--role", "admin", "--server", url, "--token", alice)
	if code != 1 || !strings.Contains(errOut, "needs the admin role") || !strings.Contains(errOut, "403") {
		t.Fatalf("viewer creates a token: %d %s", code, errOut)
	}
	if code, _, errOut = fleetctl(t, append([]string{"tokens", "revoke", "alice"}, admin...)...); code != 0 {
		t.Fatalf("tokens revoke: %d %s", code, errOut)
	}
	code, _, errOut = fleetctl(t, "devices", "list", "--server", url, "--token", alice)
	if code != 1 || !strings.Contains(errOut, "refused the operator token") {
		t.Fatalf("revoked token: %d %s", code, errOut)
	}
	if code, _, errOut = fleetctl(t, "tokens", "create", "--name", "bob", "--role", "root"); code != 2 || !strings.Contains(errOut, "role") {
		t.Fatalf("bad role: %d %s", code, errOut)
	}

	code, out, errOut = fleetctl(t, append([]string{"audit"}, admin...)...)
	if code != 0 {
		t.Fatalf("audit: %d %s", code, errOut)
	}
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 4 || !strings.Contains(rows[1], "token.revoke") || !strings.Contains(rows[2], "refused 403") || !strings.Contains(rows[2], "alice") ||
		!strings.Contains(rows[3], "token.create") || !strings.Contains(rows[3], "role viewer") {
		t.Fatalf("audit table:\n%s", out)
	}
	code, out, _ = fleetctl(t, append([]string{"audit", "--limit", "1", "--json"}, admin...)...)
	var l rest.AuditList
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil || len(l.Entries) != 1 || l.Next != l.Entries[0].ID || l.Entries[0].Action != "token.revoke" {
		t.Fatalf("audit --json: %d %s", code, out)
	}
	if code, _, errOut = fleetctl(t, append([]string{"audit", "--limit", "0"}, admin...)...); code != 2 {
		t.Fatalf("audit --limit 0: %d %s", code, errOut)
	}
}
