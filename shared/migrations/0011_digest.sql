-- The daily digest (issue 21): the local time a person wants it (NULL: off), and one row per user and
-- local day once it was composed, whatever it held, so that it is composed and sent once.
ALTER TABLE user_settings ADD COLUMN digest_at time;
CREATE TABLE digests (
    user_id  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day      date NOT NULL,
    content  jsonb NOT NULL,
    sent     boolean NOT NULL,  -- false: there was nothing to say
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day)
);
