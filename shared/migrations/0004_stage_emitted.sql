-- Which events a stage emitted when it was done: the API finds how a file's text was obtained in
-- the record of the stage that emitted text.extracted, instead of a hand-kept list of extractors.
ALTER TABLE file_stages ADD COLUMN emitted text[] NOT NULL DEFAULT '{}';
