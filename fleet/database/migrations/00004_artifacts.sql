-- Artifacts (fleet/artifact.Postgres): content-addressed chunks of at most
-- 1 MiB keyed by their sha256, each artifact a list of them, so that every
-- replica serves every artifact (with Range) and uploads stream through in
-- chunks. And the OTA signing key, when fleetd generates it.

-- +goose Up
CREATE TABLE artifact_chunks (
    sha256     text        COLLATE "C" PRIMARY KEY,
    data       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE artifacts (
    sha256     text        COLLATE "C" PRIMARY KEY,
    kind       text        NOT NULL,
    name       text        NOT NULL,
    version    text        NOT NULL,
    meta       jsonb       NOT NULL, -- artifact.Meta with the signed manifest
    created_at timestamptz NOT NULL,
    UNIQUE (kind, name, version)
);

CREATE TABLE artifact_parts (
    artifact text    COLLATE "C" NOT NULL REFERENCES artifacts ON DELETE CASCADE,
    idx      integer NOT NULL,
    chunk    text    COLLATE "C" NOT NULL,
    size     integer NOT NULL,
    PRIMARY KEY (artifact, idx)
);
CREATE INDEX artifact_parts_chunk ON artifact_parts (chunk);

-- The ed25519 key that signs manifests when ota.signing_key is not set:
-- made by the first fleetd to start, shared by every replica. Stored in
-- clear (PEM): whoever reads this table can sign artifacts agents accept.
CREATE TABLE ota_signing_key (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    private_pem text    NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE ota_signing_key;
DROP TABLE artifact_parts;
DROP TABLE artifacts;
DROP TABLE artifact_chunks;
