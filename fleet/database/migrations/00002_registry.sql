-- The device registry (fleet/registry.Postgres).

-- +goose Up
CREATE TABLE devices (
    id         text COLLATE "C" PRIMARY KEY,
    doc        jsonb  NOT NULL,           -- registry.Device without health, rate and detections
    last_point jsonb,                     -- the latest telemetry history point
    detections bigint NOT NULL DEFAULT 0  -- events stored for the device, all replicas
);

-- Detections stored per device and 10-second slot (unix seconds / 10), for
-- the per-minute rate; rows older than a few minutes are deleted.
CREATE TABLE device_rates (
    device text   COLLATE "C" NOT NULL,
    slot   bigint NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (device, slot)
);

-- Telemetry history, trimmed by age.
CREATE TABLE device_telemetry (
    device text        COLLATE "C" NOT NULL,
    time   timestamptz NOT NULL,
    point  jsonb       NOT NULL,
    PRIMARY KEY (device, time)
);
CREATE INDEX device_telemetry_time ON device_telemetry (time);

-- +goose Down
DROP TABLE device_telemetry;
DROP TABLE device_rates;
DROP TABLE devices;
