-- A broadcaster's note on a voice message (what was said, in a few words) and
-- whether it is picked for the next programme. Keep in step with the other
-- backend's folder. Times are unix milliseconds; note_at is NULL until a note or
-- a pick is first saved.

ALTER TABLE recordings ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN picked BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE recordings ADD COLUMN note_at BIGINT;
