-- When a thing was captured (issue 21): from its content where it says so (a photo's EXIF
-- DateTimeOriginal, a PDF's or an office document's creation date, a recording's creation_time, an
-- e-mail's Date), else the upload time. The search's since/until and the digest read it.
ALTER TABLE files ADD COLUMN captured_at timestamptz;
UPDATE files SET captured_at = created_at;
ALTER TABLE files ALTER COLUMN captured_at SET DEFAULT now(), ALTER COLUMN captured_at SET NOT NULL;
CREATE INDEX files_user_captured ON files (user_id, captured_at);
