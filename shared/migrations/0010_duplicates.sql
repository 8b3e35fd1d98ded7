-- Near-duplicates (issue 21; functions/cluster/duplicates.py): a group's files point to its earliest
-- (duplicate_of; NULL for the root and for files with no near-duplicate); an image's perceptual hash;
-- each text's MinHash signature and its locality-sensitive bands, which find candidates by index.
ALTER TABLE files ADD COLUMN duplicate_of uuid REFERENCES files (id) ON DELETE SET NULL;
ALTER TABLE files ADD COLUMN phash bigint;
CREATE INDEX files_duplicate_of ON files (duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE TABLE text_signatures (
    file_id uuid PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    user_id text NOT NULL,
    minhash bytea NOT NULL  -- 128 uint64 hash values
);
CREATE TABLE text_bands (
    user_id text NOT NULL,
    band    smallint NOT NULL,
    hash    bigint NOT NULL,
    file_id uuid NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, band, hash, file_id)
);
CREATE INDEX text_bands_file ON text_bands (file_id);
