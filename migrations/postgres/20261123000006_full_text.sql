-- Full-text search over segments. search_text holds the segment's search tokens (words, and
-- character pairs for CJK, as kiln's tokenizer makes them), so one 'simple' configuration
-- serves every language; the tsvector is kept by PostgreSQL itself.

ALTER TABLE document_segments ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE document_segments
    ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED;
CREATE INDEX document_segments_search_idx ON document_segments USING GIN (search_vector);
