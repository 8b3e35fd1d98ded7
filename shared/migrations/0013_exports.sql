-- Exports (issue 22): a person's whole memory as one zip. The job records the moment it stands for
-- (files made until then) and how many files it holds; its zip is streamed when fetched.
CREATE TABLE exports (
    id         uuid PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    files      int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
