-- Who may call fleetd and what they did: operator tokens
-- (fleet/operator.Postgres), the live feed's tickets
-- (fleet/operator.PostgresTickets) and the audit log (fleet/audit.Postgres).
-- Tokens and tickets are kept as their SHA-256 only.

-- +goose Up
CREATE TABLE operator_tokens (
    hash       bytea       PRIMARY KEY,            -- sha256 of the token
    name       text        COLLATE "C" NOT NULL UNIQUE,
    role       text        NOT NULL,
    created_at timestamptz NOT NULL,
    last_used  timestamptz                         -- to the minute; NULL if never
);

-- Single-use tickets: redeemed with DELETE ... RETURNING, so that one
-- replica only takes each; expired rows are purged when tickets are issued.
CREATE TABLE live_tickets (
    hash       bytea       PRIMARY KEY,            -- sha256 of the ticket
    name       text        NOT NULL,
    role       text        NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX live_tickets_expires ON live_tickets (expires_at);

-- Entries are only inserted; id orders them (newest first in lists).
CREATE TABLE audit_entries (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time     timestamptz NOT NULL,
    operator text        NOT NULL,
    role     text        NOT NULL,
    action   text        NOT NULL,
    target   text        NOT NULL,
    detail   text        NOT NULL,
    outcome  text        NOT NULL,
    status   integer     NOT NULL,
    error    text        NOT NULL
);

-- +goose Down
DROP TABLE audit_entries;
DROP TABLE live_tickets;
DROP TABLE operator_tokens;
