-- Child chunks of hierarchical_model documents (Dify's `child_chunks`): the small pieces a
-- parent segment is split into, returned with it by retrieval.

CREATE TABLE child_chunks (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL,
    dataset_id UUID NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    document_id UUID NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    segment_id UUID NOT NULL REFERENCES document_segments (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    content TEXT NOT NULL,
    word_count INTEGER NOT NULL,
    index_node_id TEXT NOT NULL,
    index_node_hash TEXT NOT NULL,
    -- 'automatic' (made by the splitter) or 'customized' (added or edited through the API).
    type TEXT NOT NULL DEFAULT 'automatic',
    created_by UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by UUID,
    indexing_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    error TEXT,
    -- Re-indexing replaces a segment's children; it can never add a second copy.
    CONSTRAINT child_chunks_position_key UNIQUE (segment_id, position)
);
CREATE INDEX child_chunks_document_idx ON child_chunks (document_id);
