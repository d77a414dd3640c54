package controller

import (
	"context"
	"fmt"
	"path/filepath"

	"edgefleet/fleet/audit"
	"edgefleet/fleet/operator"
)

// operators is who may call fleetd's REST API and what they did.
type operators struct {
	tokens  *operator.Layered
	audit   audit.Log
	tickets operator.TicketOffice
}

// openOperators opens the operator tokens (with the config's fixed tokens
// in front), the audit log and the live feed's tickets: with database.url
// all three in PostgreSQL, shared by the replicas (a token made, an entry
// recorded or a ticket issued through one holds on every one); else
// data_dir/operators.db and data_dir/audit.db, and tickets in memory.
func (c *Controller) openOperators(ctx context.Context) (operators, error) {
	var ops operators
	var st operator.Store
	if c.db != nil {
		pst, err := operator.OpenPostgres(ctx, c.db.Pool, operator.Options{})
		if err != nil {
			return ops, fmt.Errorf("controller: %w", err)
		}
		c.closers = append(c.closers, pst.Close)
		al, err := audit.OpenPostgres(ctx, c.db.Pool, audit.Options{})
		if err != nil {
			return ops, fmt.Errorf("controller: %w", err)
		}
		c.closers = append(c.closers, al.Close)
		tk, err := operator.OpenPostgresTickets(ctx, c.db.Pool, operator.TicketTTL, operator.Options{})
		if err != nil {
			return ops, fmt.Errorf("controller: %w", err)
		}
		c.closers = append(c.closers, tk.Close)
		st, ops.audit, ops.tickets = pst, al, tk
	} else {
		bst, err := operator.OpenBolt(filepath.Join(c.cfg.DataDir, "operators.db"), operator.Options{})
		if err != nil {
			return ops, fmt.Errorf("controller: %w", err)
		}
		c.closers = append(c.closers, bst.Close)
		al, err := audit.OpenBolt(filepath.Join(c.cfg.DataDir, "audit.db"), audit.Options{})
		if err != nil {
			return ops, fmt.Errorf("controller: %w", err)
		}
		c.closers = append(c.closers, al.Close)
		st, ops.audit, ops.tickets = bst, al, operator.NewTickets(operator.TicketTTL, operator.Options{})
	}
	var err error
	if ops.tokens, err = operator.WithFixed(st, operator.Options{}, c.cfg.fixedTokens()...); err != nil {
		return ops, fmt.Errorf("controller: operators: %w", err)
	}
	if ok, err := ops.tokens.HasAdmin(ctx); err == nil && !ok {
		c.log.Warn("no operator has the admin role: tokens, devices and keys cannot be managed; give one of operators: role admin")
	}
	return ops, nil
}
