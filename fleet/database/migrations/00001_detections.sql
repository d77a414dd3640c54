-- Detections (fleet/store.Postgres). Partitioned by day of capture time
-- (time_us, unix microseconds): partitions are named detections_YYYYMMDD,
-- created ahead by the store; detections_default holds rows of days without
-- one. The primary key includes the partition key, as PostgreSQL requires;
-- since a device never reuses a seq and resends an event unchanged,
-- (time_us, device, seq) is unique exactly when (device, seq) is.
-- device, camera and label sort bytewise (COLLATE "C"), like the cursors.

-- +goose Up
CREATE TABLE detections (
    time_us       bigint  NOT NULL,
    device        text    COLLATE "C" NOT NULL,
    seq           bigint  NOT NULL,
    camera        text    COLLATE "C" NOT NULL,
    label         text    COLLATE "C" NOT NULL,
    class_id      integer NOT NULL,
    score         real    NOT NULL,
    x1            real    NOT NULL,
    y1            real    NOT NULL,
    x2            real    NOT NULL,
    y2            real    NOT NULL,
    model         text    NOT NULL DEFAULT '',
    model_version text    NOT NULL DEFAULT '',
    size          integer NOT NULL, -- encoded size, for the MaxBytes retention
    PRIMARY KEY (time_us, device, seq)
) PARTITION BY RANGE (time_us);

CREATE TABLE detections_default PARTITION OF detections DEFAULT;

-- The console's queries, newest first: the primary key serves time ranges,
-- these one device (with or without a camera: camera ids repeat across
-- devices, so a camera is always asked of a device) and one label. Each
-- index costs ingest about a quarter of its rate, hence no camera index.
CREATE INDEX detections_device ON detections (device, time_us, seq);
CREATE INDEX detections_label  ON detections (label, time_us, device, seq);

-- Records and bytes per day of capture time, kept with every insert and
-- delete, so that count and size retention need no scan.
CREATE TABLE detection_days (
    day     bigint PRIMARY KEY, -- time_us / 86400000000
    records bigint NOT NULL,
    bytes   bigint NOT NULL
);

-- Everything at or before this position (time_us, device, seq) has been
-- dropped by retention: an event sent again at or before it is a duplicate.
CREATE TABLE detection_watermark (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    time_us bigint  NOT NULL,
    device  text    COLLATE "C" NOT NULL,
    seq     bigint  NOT NULL
);
INSERT INTO detection_watermark VALUES (true, -1, '', 0);

-- +goose Down
DROP TABLE detection_watermark;
DROP TABLE detection_days;
DROP TABLE detections;
