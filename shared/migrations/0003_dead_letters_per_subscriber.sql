-- One event can fail at several subscribers (embed and tag both take text.extracted): each failure is
-- its own dead letter, and a replayed event that fails again is recorded again, not dropped.
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_event_source_event_id_key;
CREATE UNIQUE INDEX dead_letters_once ON dead_letters (event_source, event_id, (coalesce(error_dest, '')));
