-- Shadow phases of model rollouts (fleet/rollout shadow.go): the latest
-- periodic and the final report of each device, kept beside the rollout's
-- doc (they carry JPEG samples, so they are not rewritten with it); job
-- reports that carry a shadow report; the device an accept action is for.

-- +goose Up
CREATE TABLE rollout_shadow (
    rollout_id text        COLLATE "C" NOT NULL,
    device_id  text        COLLATE "C" NOT NULL,
    job_id     text        NOT NULL,
    latest     jsonb,               -- api.ShadowReport, the last periodic one
    final      jsonb,               -- api.ShadowReport, the final one
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);

ALTER TABLE rollout_reports ADD COLUMN shadow jsonb; -- api.ShadowReport sent with the state
ALTER TABLE rollout_actions ADD COLUMN device text NOT NULL DEFAULT ''; -- accept: the device

-- +goose Down
ALTER TABLE rollout_actions DROP COLUMN device;
ALTER TABLE rollout_reports DROP COLUMN shadow;
DROP TABLE rollout_shadow;
