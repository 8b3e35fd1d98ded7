-- Languages (issue 25): the user's languages (OCR's packs, the search's stemmers), and each passage's
-- language with the text search configuration its words are stemmed by.
ALTER TABLE user_settings ADD COLUMN languages text[];  -- ISO 639-1 codes; NULL: the deployment's OCR_LANGUAGES

-- language: the passage's ISO 639-1 code as detected (NULL: too short to tell, or indexed before this);
-- tsconfig: its stemmer ('simple' for a language PostgreSQL has none for). Passages indexed before keep
-- 'english', as they were.
ALTER TABLE chunks ADD COLUMN language text;
ALTER TABLE chunks ADD COLUMN tsconfig regconfig NOT NULL DEFAULT 'english';
DROP INDEX chunks_tsv;
ALTER TABLE chunks DROP COLUMN tsv;
ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector(tsconfig, text)) STORED;
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
