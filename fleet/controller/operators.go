package controller

import (
	"context"
	"fmt"
	"path/filepath"

	"edgefleet/fleet/audit"
	"edgefleet/fleet/operator"
)

// openOperators opens the operator tokens (data_dir/operators.db, with
// the config's fixed tokens in front) and the audit log (data_dir/audit.db).
func (c *Controller) openOperators() (*operator.Layered, *audit.Bolt, error) {
	st, err := operator.OpenBolt(filepath.Join(c.cfg.DataDir, "operators.db"), operator.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("controller: %w", err)
	}
	c.closers = append(c.closers, st.Close)
	ops, err := operator.WithFixed(st, operator.Options{}, c.cfg.fixedTokens()...)
	if err != nil {
		return nil, nil, fmt.Errorf("controller: operators: %w", err)
	}
	if ok, err := ops.HasAdmin(context.Background()); err == nil && !ok {
		c.log.Warn("no operator has the admin role: tokens, devices and keys cannot be managed; give one of operators: role admin")
	}
	al, err := audit.OpenBolt(filepath.Join(c.cfg.DataDir, "audit.db"), audit.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("controller: %w", err)
	}
	c.closers = append(c.closers, al.Close)
	return ops, al, nil
}
