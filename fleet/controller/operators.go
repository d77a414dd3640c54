package controller

import (
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
	al, err := audit.OpenBolt(filepath.Join(c.cfg.DataDir, "audit.db"), audit.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("controller: %w", err)
	}
	c.closers = append(c.closers, al.Close)
	return ops, al, nil
}
