-- Devices registered for enrollment and their one-time tokens
-- (fleet/enroll.Postgres). A device has at most one token: Add deletes the
-- previous one. A used token stays, so that reusing it says "used" rather
-- than "unknown". A device revoked without being added has only revoked_at.

-- +goose Up
CREATE TABLE enroll_devices (
    id          text        COLLATE "C" PRIMARY KEY,
    labels      jsonb,
    added_at    timestamptz,
    enrolled_at timestamptz,
    revoked_at  timestamptz,
    token       bytea                  -- sha256 of the current token
);

CREATE TABLE enroll_tokens (
    hash       bytea       PRIMARY KEY, -- sha256 of the token
    device     text        COLLATE "C" NOT NULL REFERENCES enroll_devices ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used       boolean     NOT NULL DEFAULT false
);
CREATE INDEX enroll_tokens_device ON enroll_tokens (device);

-- +goose Down
DROP TABLE enroll_tokens;
DROP TABLE enroll_devices;
