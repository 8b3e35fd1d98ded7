-- Asking (issue 20): the tokens a generative provider counted for each user's answers, per UTC day,
-- against ASK_DAILY_TOKENS. One row per user and day, added to as answers end.
CREATE TABLE ask_usage (
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     date NOT NULL,
    tokens  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
