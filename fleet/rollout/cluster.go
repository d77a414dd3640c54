package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
)

// The rollout lease is the session advisory lock (leaseKey1, leaseKey2):
// "edge", "roll" in ASCII.
const (
	leaseKey1 = 0x65646765
	leaseKey2 = 0x726f6c6c
)

// ClusterOptions tune a Cluster; zero fields take the defaults.
type ClusterOptions struct {
	// LeasePoll is how often a standby tries to take the lease, and how
	// often the holder checks its lease connection; default 2s. A holder
	// that dies loses the lease when its connection drops (at once for a
	// killed process; within about 11 s, by TCP keepalives, for a lost
	// machine), so a standby takes over within LeasePoll after that.
	LeasePoll time.Duration
	// InboxPoll is how often the holder reads new rollouts, job reports and
	// operator actions; default 250ms.
	InboxPoll time.Duration
	// ActionTimeout bounds how long an operator action on a standby waits
	// for the holder; default 15s.
	ActionTimeout time.Duration
	// ReportsKept is how long applied job reports are kept to recognise
	// late duplicates; default 24h.
	ReportsKept time.Duration
}

// Cluster is the rollout engine of one fleetd among replicas that share a
// PostgreSQL database. Exactly one replica at a time holds the rollout
// lease (a PostgreSQL session advisory lock on a connection of its own)
// and runs an Engine on the database: it alone steps rollouts, publishes
// commands and writes rollouts' state, and its saves are fenced (refused
// once its lease connection no longer holds the lock). Taking the lease is
// a restart as far as the engine goes: it loads every rollout and sends
// the jobs in flight again.
//
// Every replica serves the rest from the database: reads (Get, List,
// ArtifactInUse) see the stored state; Create stores a new rollout, which
// the holder picks up; job reports go into a table keyed by (job, state),
// so a report reaching two replicas is applied once; an operator action on
// a standby is queued for the holder, which applies it and writes back the
// outcome the standby waits for. It is safe for concurrent use.
type Cluster struct {
	store *Postgres
	pool  *pgxpool.Pool
	opt   Options
	copt  ClusterOptions
	log   *slog.Logger

	mu     sync.Mutex
	leader *Engine // while this replica holds the lease
}

// NewCluster opens the rollout store in pool's database (migrated by
// database.Open). Run takes part in the lease.
func NewCluster(ctx context.Context, pool *pgxpool.Pool, opt Options, copt ClusterOptions) (*Cluster, error) {
	if opt.Devices == nil || opt.Dispatcher == nil {
		return nil, errors.New("rollout: open: Devices and Dispatcher are required")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if copt.LeasePoll <= 0 {
		copt.LeasePoll = 2 * time.Second
	}
	if copt.InboxPoll <= 0 {
		copt.InboxPoll = 250 * time.Millisecond
	}
	if copt.ActionTimeout <= 0 {
		copt.ActionTimeout = 15 * time.Second
	}
	if copt.ReportsKept <= 0 {
		copt.ReportsKept = 24 * time.Hour
	}
	m, err := newMetrics(opt.Registerer)
	if err != nil {
		return nil, fmt.Errorf("rollout: open: metrics: %w", err)
	}
	opt.metrics = m
	s, err := OpenPostgres(ctx, pool)
	if err != nil {
		return nil, err
	}
	c := &Cluster{store: s, pool: pool, opt: opt, copt: copt, log: opt.Logger}
	if opt.Registerer != nil {
		held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgefleet_rollout_lease_held",
			Help: "1 while this fleetd holds the rollout lease and runs the rollout engine."}, func() float64 {
			if c.Leader() {
				return 1
			}
			return 0
		})
		if err := opt.Registerer.Register(held); err != nil {
			return nil, fmt.Errorf("rollout: open: metrics: %w", err)
		}
	}
	return c, nil
}

// engine returns the engine while this replica holds the lease, else nil.
func (c *Cluster) engine() *Engine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// Leader reports whether this replica holds the lease now.
func (c *Cluster) Leader() bool { return c.engine() != nil }

// Run takes part in the lease until ctx ends: it waits for the lease, runs
// the engine while it holds it, and waits again if it loses it.
func (c *Cluster) Run(ctx context.Context) error {
	for {
		l, err := c.acquire(ctx)
		if err != nil {
			return nil // ctx ended
		}
		c.lead(ctx, l)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// acquire tries the lease every LeasePoll until it has it or ctx ends.
func (c *Cluster) acquire(ctx context.Context) (*pgx.Conn, error) {
	var conn *pgx.Conn
	for {
		if conn == nil {
			var err error
			if conn, err = c.connect(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("rollout lease: connect", "err", err)
			}
		}
		if conn != nil {
			var ok bool
			tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.QueryRow(tctx, `SELECT pg_try_advisory_lock($1, $2)`, leaseKey1, leaseKey2).Scan(&ok)
			cancel()
			if err == nil && ok {
				return conn, nil
			}
			if err != nil {
				conn.Close(context.Background())
				conn = nil
			}
		}
		select {
		case <-ctx.Done():
			if conn != nil {
				conn.Close(context.Background())
			}
			return nil, ctx.Err()
		case <-time.After(c.copt.LeasePoll):
		}
	}
}

// connect opens the lease's own connection, with TCP keepalives that make
// the server drop it (and the lock) soon after this machine is gone.
func (c *Cluster) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := c.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "fleetd-rollout-lease"
	cfg.RuntimeParams["tcp_keepalives_idle"] = "5"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "2"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	return pgx.ConnectConfig(ctx, cfg)
}

// lead runs the engine while conn holds the lease.
func (c *Cluster) lead(ctx context.Context, conn *pgx.Conn) {
	defer conn.Close(context.Background()) // releases the lock if the server still has it
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pid := conn.PgConn().PID()
	e, err := New(lctx, leaderStore{c.store, pid}, c.opt)
	if err != nil {
		c.log.Error("rollout lease: start engine", "err", err)
		return
	}
	c.mu.Lock()
	c.leader = e
	c.mu.Unlock()
	c.log.Info("rollout lease taken: this fleetd runs the rollout engine", "pid", pid)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := e.Run(lctx); err != nil && !errors.Is(err, ErrNotLeader) {
			c.log.Error("rollout engine", "err", err)
		}
	})
	wg.Go(func() { c.inbox(lctx, e) })
	c.watch(lctx, conn)
	cancel()
	wg.Wait()
	c.mu.Lock()
	c.leader = nil
	c.mu.Unlock()
	if err := e.Close(); err != nil && !errors.Is(err, ErrNotLeader) {
		c.log.Warn("rollout engine: close", "err", err)
	}
	if ctx.Err() == nil {
		c.log.Warn("rollout lease lost: standing by")
	}
}

// watch returns when ctx ends or the lease connection stops answering.
func (c *Cluster) watch(ctx context.Context, conn *pgx.Conn) {
	t := time.NewTicker(c.copt.LeasePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := conn.Exec(tctx, `SELECT 1`)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("rollout lease: connection lost", "err", err)
			return
		}
	}
}

// leaderStore is the store as the lease holder's engine sees it: saves
// are fenced by the lease connection, and Close leaves the store open.
// (Should Postgres implement AtomicSaver, leaderStore must fence its
// SaveWithShadow too: an embedded one would skip the fence.)
type leaderStore struct {
	*Postgres
	fence uint32
}

func (s leaderStore) Save(ctx context.Context, rs ...*Rollout) error { return s.save(ctx, s.fence, rs) }

// inbox applies, every InboxPoll, what other replicas stored: new
// rollouts, job reports and operator actions.
func (c *Cluster) inbox(ctx context.Context, e *Engine) {
	t := time.NewTicker(c.copt.InboxPoll)
	defer t.Stop()
	for {
		if err := c.adoptNew(ctx, e); err != nil && ctx.Err() == nil {
			c.log.Warn("rollout inbox: rollouts", "err", err)
		}
		if err := c.applyReports(ctx, e); err != nil && ctx.Err() == nil {
			c.log.Warn("rollout inbox: job reports", "err", err)
		}
		if err := c.applyActions(ctx, e); err != nil && ctx.Err() == nil {
			c.log.Warn("rollout inbox: actions", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Cluster) adoptNew(ctx context.Context, e *Engine) error {
	ids, err := c.store.ids(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if e.has(id) {
			continue
		}
		r, err := c.store.get(ctx, id)
		if err != nil {
			return err
		}
		e.adopt(r)
	}
	return nil
}

func (c *Cluster) applyReports(ctx context.Context, e *Engine) error {
	for {
		rs, err := c.store.pendingReports(ctx, 1000)
		if err != nil || len(rs) == 0 {
			return err
		}
		ns := make([]int64, len(rs))
		for i, r := range rs {
			if err := e.HandleJobStatus(ctx, r.st); err != nil && !errors.Is(err, ErrNotFound) {
				if errors.Is(err, ErrClosed) {
					return nil
				}
				c.log.Warn("job status", "device_id", r.st.DeviceID, "job_id", r.st.JobID, "err", err)
			}
			ns[i] = r.n
		}
		// Marked applied only once the engine has stored their effect: a
		// holder that dies in between leaves them to the next one.
		if err := e.flush(); err != nil {
			return err
		}
		if err := c.store.markApplied(ctx, ns, c.copt.ReportsKept); err != nil {
			return err
		}
	}
}

func (c *Cluster) applyActions(ctx context.Context, e *Engine) error {
	qs, err := c.store.pendingActions(ctx)
	if err != nil {
		return err
	}
	for _, q := range qs {
		sum, err := e.Act(ctx, q.id, q.a)
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrNotLeader) {
			return nil
		}
		if err := c.store.finishAction(ctx, q.n, sum, err); err != nil {
			return err
		}
	}
	return nil
}

// HandleJobStatus records a device's job report for the lease holder,
// once per job and state. Reports of unknown jobs are dropped there.
func (c *Cluster) HandleJobStatus(ctx context.Context, st api.JobStatus) error {
	if !validJobState(st.State) {
		return fmt.Errorf("rollout: job status: unknown state %q", st.State)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.store.putReport(ctx, st)
}

// Create starts a rollout on an operator's behalf; see CreateBy.
func (c *Cluster) Create(ctx context.Context, spec Spec) (Summary, error) {
	return c.CreateBy(ctx, spec, "")
}

// CreateBy is Engine.CreateBy: on the lease holder its engine creates the
// rollout, elsewhere it is stored for the holder to pick up.
func (c *Cluster) CreateBy(ctx context.Context, spec Spec, by string) (Summary, error) {
	if e := c.engine(); e != nil {
		if sum, err := e.CreateBy(ctx, spec, by); !errors.Is(err, ErrClosed) {
			return sum, err
		}
	}
	p, err := planRollout(ctx, c.opt.Devices, spec)
	if err != nil {
		return Summary{}, err
	}
	r, err := c.store.Create(ctx, p.fill(c.store.Epoch(), c.opt.Now(), by))
	if err != nil {
		return Summary{}, err
	}
	p.logCreated(c.log, r)
	return r.Summarize(), nil
}

// Shadow returns the stored shadow reports of a rollout's devices, sorted
// by device.
func (c *Cluster) Shadow(ctx context.Context, id string) ([]ShadowRecord, error) {
	if _, err := c.Get(id); err != nil {
		return nil, err
	}
	recs, err := c.store.LoadShadow(ctx, id)
	if err != nil {
		return nil, err
	}
	sortShadow(recs)
	return recs, nil
}

// Get returns a rollout as stored.
func (c *Cluster) Get(id string) (*Rollout, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.store.get(ctx, id)
}

// List returns every rollout's summary as stored, newest first (none
// while the database does not answer).
func (c *Cluster) List() []Summary {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := c.store.list(ctx)
	if err != nil {
		c.log.Warn("rollout list", "err", err)
	}
	return out
}

// ArtifactInUse lists the stored rollouts not yet final that send the
// artifact. While the database does not answer it says "unknown", so that
// the artifact is not deleted.
func (c *Cluster) ArtifactInUse(sha256 string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids, err := c.store.inUse(ctx, sha256)
	if err != nil {
		c.log.Warn("rollout: artifact in use", "err", err)
		return []string{"unknown (database: " + err.Error() + ")"}
	}
	return ids
}

// Act applies an operator action: on the lease holder at once, elsewhere
// through the holder, waiting for its outcome up to ActionTimeout.
func (c *Cluster) Act(ctx context.Context, id string, a Action) (Summary, error) {
	if a.By == "" {
		a.By = ActorOperator
	}
	if e := c.engine(); e != nil {
		if sum, err := e.Act(ctx, id, a); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotLeader) {
			return sum, err
		}
	}
	n, err := c.store.putAction(ctx, id, a)
	if err != nil {
		return Summary{}, err
	}
	wait, cancel := context.WithTimeout(ctx, c.copt.ActionTimeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		sum, done, err := c.store.actionResult(wait, n)
		if done || err != nil && wait.Err() == nil {
			return sum, err
		}
		select {
		case <-wait.Done():
			return c.cancelAction(n, id, a)
		case <-t.C:
		}
	}
}

// cancelAction withdraws an action no holder took in time, unless it was
// done meanwhile.
func (c *Cluster) cancelAction(n int64, id string, a Action) (Summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tag, err := c.pool.Exec(ctx, `UPDATE rollout_actions SET done = true, err = 'withdrawn', err_kind = '' WHERE n = $1 AND NOT done`, n)
	if err == nil && tag.RowsAffected() == 0 {
		if sum, done, err := c.store.actionResult(ctx, n); done {
			return sum, err
		}
	}
	return Summary{}, fmt.Errorf("%w: %s %s: no fleetd ran the rollout engine within %s", ErrNotLeader, a.Kind, id, c.copt.ActionTimeout)
}

// Pause is Act with ActionPause by an unnamed operator.
func (c *Cluster) Pause(id string) (Summary, error) {
	return c.Act(context.Background(), id, Action{Kind: ActionPause})
}

// Resume is Act with ActionResume by an unnamed operator.
func (c *Cluster) Resume(id string) (Summary, error) {
	return c.Act(context.Background(), id, Action{Kind: ActionResume})
}

// Abort is Act with ActionAbort by an unnamed operator.
func (c *Cluster) Abort(id, reason string) (Summary, error) {
	return c.Act(context.Background(), id, Action{Kind: ActionAbort, Reason: reason})
}

// Rollback is Act with ActionRollback by an unnamed operator.
func (c *Cluster) Rollback(id string) (Summary, error) {
	return c.Act(context.Background(), id, Action{Kind: ActionRollback})
}

// Close stops nothing (Run ends with its context); the pool is the caller's.
func (c *Cluster) Close() error { return nil }
