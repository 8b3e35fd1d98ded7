-- An e-mail's attachments are files of their own, linked to their message, each through the pipeline as an
-- upload would go. Deleting the message keeps them (as files of their own, each deleted by itself).
ALTER TABLE files ADD COLUMN parent_id uuid REFERENCES files (id) ON DELETE SET NULL;
CREATE INDEX files_parent ON files (parent_id) WHERE parent_id IS NOT NULL;
