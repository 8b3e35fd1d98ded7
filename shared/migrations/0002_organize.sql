-- Organising memory: tags (entities and key phrases), clusters with stable ids, the per-user model
-- that places a new file into them, and full-text search beside vector search.

-- Full-text search for hybrid search: an exact rare word that embeddings blur still matches here.
ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED;
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);

CREATE TABLE tags (
    file_id  uuid NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    user_id  text NOT NULL,
    kind     text NOT NULL,  -- person, organization, place, date, money, … or phrase
    name     text NOT NULL,  -- normalised: lower case, lemmas, no leading article
    label    text NOT NULL,  -- the most frequent surface form, for display
    score    real NOT NULL,
    PRIMARY KEY (file_id, kind, name)
);
CREATE INDEX tags_user_name ON tags (user_id, name);

CREATE TABLE clusters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label       text NOT NULL,
    size        int NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clusters_user ON clusters (user_id);

-- NULL: not clustered (yet, or noise: HDBSCAN leaves outliers out, and so do we).
ALTER TABLE files ADD COLUMN cluster_id bigint REFERENCES clusters (id) ON DELETE SET NULL;
CREATE INDEX files_cluster ON files (cluster_id);

-- The fitted reduction + HDBSCAN model of each user, kept to place new files without re-clustering.
CREATE TABLE cluster_models (
    user_id     text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    model       bytea NOT NULL,
    files       int NOT NULL,    -- how many files it was fitted on: re-cluster when grown enough
    fitted_at   timestamptz NOT NULL DEFAULT now()
);
