-- Knowledge tags of a workspace and the datasets they are bound to (Dify's tags and
-- tag_bindings, type "knowledge").

CREATE TABLE tags (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('knowledge')),
    name TEXT NOT NULL,
    created_by UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX tags_name_key ON tags (tenant_id, type, name);

CREATE TABLE tag_bindings (
    tag_id UUID NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    target_id UUID NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    tenant_id UUID NOT NULL,
    created_by UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tag_id, target_id)
);
CREATE INDEX tag_bindings_target_idx ON tag_bindings (target_id);
