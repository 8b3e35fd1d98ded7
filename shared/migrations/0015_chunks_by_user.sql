-- Many people in one database (issue 24): the passages move into 16 partitions by hash of their user,
-- each with an HNSW index of its own. Measured at 1M chunks over 2,000 users (bench/bench_users.py,
-- docs/benchmarks.md): with one index over everyone, a user holding 1% of the rows searched it in 33 ms at
-- p95 and found 93.5% of their true top ten, the index scan wading through other people's neighbours; in
-- a partition that user holds 16 times the share (16 ms, 99.5%), and the 16 indexes build in half the time.
-- A user's queries name their user_id, so PostgreSQL reads one partition. The rows move as they are:
-- vectors, text, locators, languages; nothing is recomputed, and the same transaction checks the count.
SET LOCAL maintenance_work_mem = '512MB';  -- the HNSW graphs are built in memory where they fit

CREATE TABLE chunks_by_user (
    file_id    uuid NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    ord        int NOT NULL,
    user_id    text NOT NULL,
    text       text NOT NULL,
    locator    jsonb NOT NULL DEFAULT '{}',
    embedding  vector(384) NOT NULL,
    language   text,
    tsconfig   regconfig NOT NULL DEFAULT 'english',
    tsv        tsvector GENERATED ALWAYS AS (to_tsvector(tsconfig, text)) STORED,
    -- A unique key of a partitioned table holds its partition key; a file belongs to one user, so this is
    -- as unique as (file_id, ord) was, and it serves the user's exact scans (its leading column).
    PRIMARY KEY (user_id, file_id, ord)
) PARTITION BY HASH (user_id);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE chunks_p%s PARTITION OF chunks_by_user FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
                       i, i);
    END LOOP;
END $$;

INSERT INTO chunks_by_user (file_id, ord, user_id, text, locator, embedding, language, tsconfig)
SELECT file_id, ord, user_id, text, locator, embedding, language, tsconfig FROM chunks;

DO $$
BEGIN
    IF (SELECT count(*) FROM chunks_by_user) <> (SELECT count(*) FROM chunks) THEN
        RAISE EXCEPTION 'chunks_by_user holds % rows where chunks holds %: nothing was changed',
            (SELECT count(*) FROM chunks_by_user), (SELECT count(*) FROM chunks);
    END IF;
END $$;

DROP TABLE chunks;
ALTER TABLE chunks_by_user RENAME TO chunks;
ALTER TABLE chunks RENAME CONSTRAINT chunks_by_user_pkey TO chunks_pkey;
-- Look-ups of one file's passages (a stage replacing them, a file's language) that do not name the user.
CREATE INDEX chunks_file ON chunks (file_id, ord);
CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
