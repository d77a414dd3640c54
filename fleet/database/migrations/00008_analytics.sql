-- Analytics events (fleet/store.Postgres): the track_end, line_cross,
-- zone_enter and zone_exit events devices send in their detection batches,
-- stored once per (device, seq) like detections, and the JPEG snapshots
-- they carry, apart, with their own retention. event is the whole
-- api.Event without its snapshot (JSON); the columns beside it are what
-- queries filter on. crop and thumb say which snapshot parts arrived.

-- +goose Up
CREATE TABLE analytics_events (
    device    text    COLLATE "C" NOT NULL,
    seq       bigint  NOT NULL,
    time_us   bigint  NOT NULL,
    camera    text    COLLATE "C" NOT NULL,
    type      text    COLLATE "C" NOT NULL,
    label     text    COLLATE "C" NOT NULL,
    line      text    COLLATE "C" NOT NULL DEFAULT '',
    direction text    COLLATE "C" NOT NULL DEFAULT '',
    zone      text    COLLATE "C" NOT NULL DEFAULT '',
    event     jsonb   NOT NULL,
    PRIMARY KEY (device, seq)
);

-- Newest first over everything or one device; line crossings by time for counts.
CREATE INDEX analytics_events_time   ON analytics_events (time_us, device, seq);
CREATE INDEX analytics_events_device ON analytics_events (device, time_us, seq);
CREATE INDEX analytics_events_lines  ON analytics_events (time_us, line) WHERE type = 'line_cross';

CREATE TABLE event_snapshots (
    device  text    COLLATE "C" NOT NULL,
    seq     bigint  NOT NULL,
    part    text    COLLATE "C" NOT NULL CHECK (part IN ('crop', 'thumb')),
    time_us bigint  NOT NULL, -- the event's capture time, for retention
    jpeg    bytea   NOT NULL,
    PRIMARY KEY (device, seq, part)
);
CREATE INDEX event_snapshots_time ON event_snapshots (time_us);

-- +goose Down
DROP TABLE event_snapshots;
DROP TABLE analytics_events;
