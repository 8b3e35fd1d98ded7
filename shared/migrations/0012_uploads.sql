-- Resumable uploads (issue 22, tus 1.0): what arrived so far of each, in parts (blobs under
-- users/<user>/uploads/<id>/), until it is whole and becomes a file (file_id), or expires.
CREATE TABLE uploads (
    id          uuid PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename    text NOT NULL,
    length      bigint NOT NULL,
    received    bigint NOT NULL DEFAULT 0,  -- tus's Upload-Offset
    parts       text[] NOT NULL DEFAULT '{}',  -- blob uris, in order
    file_id     uuid REFERENCES files (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX uploads_expires ON uploads (expires_at);
