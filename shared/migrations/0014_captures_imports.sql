-- Web capture and imports (issue 22).
-- A link's address: the file's original is the page as fetched (its sha256 stays the address's, so the
-- same URL captured twice is one file).
ALTER TABLE files ADD COLUMN source_url text;
-- An import: an archive stored under users/<user>/imports/<id>/, made into files by the imports stage.
-- `total` and `done` are its progress, written as it goes; `added` counts the files new to the user
-- (a note imported before adds nothing).
CREATE TABLE imports (
    id          uuid PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename    text NOT NULL,
    size        bigint NOT NULL,
    status      text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    format      text,            -- keep, markdown, enex, mindspace
    total       int NOT NULL DEFAULT 0,
    done        int NOT NULL DEFAULT 0,
    added       int NOT NULL DEFAULT 0,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX imports_user ON imports (user_id, created_at);
