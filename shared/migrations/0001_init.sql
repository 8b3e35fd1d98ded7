-- The spine: users, their files with a per-stage progress record, embedded chunks, and the
-- records that make at-least-once delivery safe (consumed event ids) and visible (failures).
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE users (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE files (
    id            uuid PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename      text NOT NULL,
    media_type    text NOT NULL,
    category      text NOT NULL,
    size          bigint NOT NULL CHECK (size > 0),
    sha256        text NOT NULL,
    blob_uri      text NOT NULL,
    status        text NOT NULL DEFAULT 'processing'
                  CHECK (status IN ('processing', 'ready', 'failed', 'unsupported')),
    status_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    ready_at      timestamptz,
    -- The same bytes uploaded twice by one user are one file.
    UNIQUE (user_id, sha256)
);
CREATE INDEX files_user_created ON files (user_id, created_at DESC);

CREATE TABLE file_stages (
    file_id     uuid NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    stage       text NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'retrying', 'done', 'failed', 'skipped')),
    attempts    int NOT NULL DEFAULT 1,
    detail      jsonb NOT NULL DEFAULT '{}',
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (file_id, stage)
);

CREATE TABLE chunks (
    file_id    uuid NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    ord        int NOT NULL,
    user_id    text NOT NULL,
    text       text NOT NULL,
    -- Where the passage sits in its file: {"page": 3} or {"start": 12.5, "end": 17.0}.
    locator    jsonb NOT NULL DEFAULT '{}',
    embedding  vector(384) NOT NULL,
    PRIMARY KEY (file_id, ord)
);
CREATE INDEX chunks_user ON chunks (user_id);
CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops);

-- Knative delivers at least once: a consumer remembers what it consumed (keyed by source and id,
-- as the data-plane spec asks) and the reply it gave, so a redelivery replays the same reply.
CREATE TABLE consumed_events (
    consumer    text NOT NULL,
    source      text NOT NULL,
    id          text NOT NULL,
    reply       jsonb,
    consumed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, source, id)
);

-- Every event a function refused or failed on, with the reason: nothing fails in silence.
CREATE TABLE event_failures (
    id          bigserial PRIMARY KEY,
    consumer    text NOT NULL,
    event_type  text,
    event_id    text,
    file_id     uuid,
    http_status int NOT NULL,
    reason      text NOT NULL,
    event       jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_failures_file ON event_failures (file_id);

-- What the broker gave up on (the dead-letter sink's record), ready to inspect and replay.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    event_source text NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    event       jsonb NOT NULL,
    file_id     uuid,
    error_dest  text,
    error_code  text,
    error_data  text,
    received_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    UNIQUE (event_source, event_id)
);

-- The outcome events a file has produced; it is ready once they cover READY_AFTER.
ALTER TABLE files ADD COLUMN outcomes text[] NOT NULL DEFAULT '{}';
