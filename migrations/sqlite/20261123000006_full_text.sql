-- Full-text search over segments (see the PostgreSQL twin): an FTS5 index over search_text,
-- kept in step with document_segments by triggers, so every write path (and cascaded
-- deletes) updates it.

ALTER TABLE document_segments ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
CREATE VIRTUAL TABLE segment_fts USING fts5(search_text, content = 'document_segments', content_rowid = 'rowid');
CREATE TRIGGER document_segments_fts_insert AFTER INSERT ON document_segments BEGIN
    INSERT INTO segment_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER document_segments_fts_delete AFTER DELETE ON document_segments BEGIN
    INSERT INTO segment_fts (segment_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;
CREATE TRIGGER document_segments_fts_update AFTER UPDATE OF search_text ON document_segments BEGIN
    INSERT INTO segment_fts (segment_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO segment_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
