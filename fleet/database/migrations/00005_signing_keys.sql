-- The OTA key ring (fleet/artifact.PostgresRing): ota_signing_key, which
-- held one key, holds every key fleetd made: the one signing now
-- (signing, with its private half) and the retired ones, whose public
-- halves agents may still pin (private half erased). The key a fleetd
-- made before this migration stays the signing key; its key_id and
-- public_pem are filled in by the first fleetd to open the ring.

-- +goose Up
ALTER TABLE ota_signing_key DROP CONSTRAINT ota_signing_key_pkey;
ALTER TABLE ota_signing_key DROP CONSTRAINT ota_signing_key_id_check;
ALTER TABLE ota_signing_key RENAME COLUMN id TO signing;
ALTER TABLE ota_signing_key ALTER COLUMN signing SET DEFAULT false;
ALTER TABLE ota_signing_key ALTER COLUMN private_pem DROP NOT NULL;
ALTER TABLE ota_signing_key
    ADD COLUMN key_id     text COLLATE "C" UNIQUE,
    ADD COLUMN public_pem text,
    ADD COLUMN retired_at timestamptz,
    ADD CONSTRAINT ota_signing_key_state CHECK (signing = (retired_at IS NULL) AND (NOT signing OR private_pem IS NOT NULL));
CREATE UNIQUE INDEX ota_signing_key_one_signing ON ota_signing_key (signing) WHERE signing;

-- +goose Down
DELETE FROM ota_signing_key WHERE NOT signing;
DROP INDEX ota_signing_key_one_signing;
ALTER TABLE ota_signing_key DROP CONSTRAINT ota_signing_key_state;
ALTER TABLE ota_signing_key DROP COLUMN key_id, DROP COLUMN public_pem, DROP COLUMN retired_at;
ALTER TABLE ota_signing_key ALTER COLUMN private_pem SET NOT NULL;
ALTER TABLE ota_signing_key ALTER COLUMN signing SET DEFAULT true;
ALTER TABLE ota_signing_key RENAME COLUMN signing TO id;
ALTER TABLE ota_signing_key ADD CONSTRAINT ota_signing_key_id_check CHECK (id);
ALTER TABLE ota_signing_key ADD PRIMARY KEY (id);
