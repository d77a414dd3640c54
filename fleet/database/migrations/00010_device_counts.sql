-- Detection counts per device apart from the device's document
-- (fleet/registry.Postgres): a flush of the counts then rewrites neither
-- the documents nor waits on the rows that state and telemetry updates
-- lock, and a refresh can tell a changed document by its row version.
-- last_seen is when this count last grew; the registry shows the later of
-- it and the document's last_seen.

-- +goose Up
CREATE TABLE device_counts (
    id         text        COLLATE "C" PRIMARY KEY,
    detections bigint      NOT NULL DEFAULT 0,
    last_seen  timestamptz
);
INSERT INTO device_counts (id, detections) SELECT id, detections FROM devices WHERE detections <> 0;
ALTER TABLE devices DROP COLUMN detections;

-- +goose Down
ALTER TABLE devices ADD COLUMN detections bigint NOT NULL DEFAULT 0;
UPDATE devices d SET detections = c.detections FROM device_counts c WHERE c.id = d.id;
UPDATE devices d SET doc = jsonb_set(d.doc, '{last_seen}', to_jsonb(c.last_seen)) FROM device_counts c
    WHERE c.id = d.id AND c.last_seen > coalesce((d.doc->>'last_seen')::timestamptz, '-infinity');
DROP TABLE device_counts;
