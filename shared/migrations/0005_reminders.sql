-- Closing the loop with the person: their settings, reminders (set by hand or suggested from what
-- they captured), the devices their phone registered, every notification sent, and file backups.
CREATE TABLE user_settings (
    user_id         text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    timezone        text NOT NULL DEFAULT 'UTC',
    notify_on_ready boolean NOT NULL DEFAULT false,
    backup_bucket   text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reminders (
    id             bigserial PRIMARY KEY,
    user_id        text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title          text NOT NULL,
    due_at         timestamptz NOT NULL,       -- the first occurrence
    timezone       text NOT NULL,              -- the rule repeats in this zone's wall-clock time
    rrule          text,
    next_at        timestamptz,                -- the next occurrence to fire; NULL once done
    status         text NOT NULL CHECK (status IN ('suggested', 'scheduled', 'done', 'dismissed')),
    file_id        uuid REFERENCES files (id) ON DELETE SET NULL,  -- a reminder set by hand outlives its file
    passage        text,                       -- where a suggestion came from
    locator        jsonb,
    suggestion_key text,                       -- one suggestion per date and sentence of a file
    fired          int NOT NULL DEFAULT 0,
    last_fired_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (file_id, suggestion_key)
);
CREATE INDEX reminders_due ON reminders (next_at) WHERE status = 'scheduled';
CREATE INDEX reminders_user ON reminders (user_id, status);

CREATE TABLE devices (
    token      text PRIMARY KEY,                -- an FCM registration token names one app install
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_user ON devices (user_id);

CREATE TABLE notifications (
    id          bigserial PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key         text NOT NULL UNIQUE,           -- what it is about, once: a redelivery is the same row
    kind        text NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL DEFAULT '',
    reminder_id bigint,
    file_id     uuid,
    channel     text NOT NULL,
    status      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC);

CREATE TABLE backups (
    file_id    uuid PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    status     text NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    uri        text,
    reason     text,
    md5        text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
