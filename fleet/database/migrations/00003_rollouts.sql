-- Rollouts (fleet/rollout.Postgres) and the engine's inboxes. Only the
-- fleetd that holds the rollout lease (a session advisory lock) updates a
-- rollout's doc; every replica inserts new rollouts, job reports and
-- operator actions, which the lease holder applies.

-- +goose Up
CREATE TABLE rollout_meta (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    epoch text    NOT NULL -- random, made with the database; job ids carry it
);

CREATE SEQUENCE rollout_ids; -- n of r<n>, never given twice

CREATE TABLE rollouts (
    id         text        COLLATE "C" PRIMARY KEY,
    doc        jsonb       NOT NULL, -- rollout.Rollout with every job and transition
    summary    jsonb       NOT NULL, -- rollout.Summary, for lists
    sha256     text        NOT NULL, -- the artifact it sends
    final      boolean     NOT NULL, -- no more update jobs will be sent
    created_at timestamptz NOT NULL
);
CREATE INDEX rollouts_artifact ON rollouts (sha256) WHERE NOT final;

-- Job reports as devices sent them, through any replica: one row per
-- (job, state), so a report that reaches two replicas (or comes twice) is
-- applied once. Applied rows are kept a day to recognise late duplicates.
CREATE TABLE rollout_reports (
    n           bigserial   UNIQUE,
    job_id      text        COLLATE "C" NOT NULL,
    state       text        NOT NULL,
    device_id   text        NOT NULL,
    progress    double precision NOT NULL DEFAULT 0,
    reason      text        NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL DEFAULT now(),
    applied     boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, state)
);
CREATE INDEX rollout_reports_pending ON rollout_reports (n) WHERE NOT applied;

-- Operator actions asked of a replica that does not hold the lease; the
-- holder applies them in order and writes the outcome.
CREATE TABLE rollout_actions (
    n          bigserial   PRIMARY KEY,
    rollout_id text        NOT NULL,
    kind       text        NOT NULL,
    by_name    text        NOT NULL DEFAULT '',
    reason     text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    done       boolean     NOT NULL DEFAULT false,
    summary    jsonb,               -- the outcome: a rollout.Summary ...
    err        text,                -- ... or an error
    err_kind   text                 -- not_found, state or ''
);
CREATE INDEX rollout_actions_pending ON rollout_actions (n) WHERE NOT done;

-- +goose Down
DROP TABLE rollout_actions;
DROP TABLE rollout_reports;
DROP TABLE rollouts;
DROP SEQUENCE rollout_ids;
DROP TABLE rollout_meta;
