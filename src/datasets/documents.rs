//! Document and segment records and their JSON in Dify's shapes.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// A document of a dataset.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Document {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub dataset_id: Uuid,
    pub position: i32,
    pub data_source_type: String,
    pub data_source_info: Option<String>,
    pub dataset_process_rule_id: Option<Uuid>,
    pub batch: String,
    pub name: String,
    pub created_from: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub upload_file_id: Option<Uuid>,
    pub word_count: i32,
    pub tokens: i32,
    pub indexing_status: String,
    pub processing_started_at: Option<DateTime<Utc>>,
    pub parsing_completed_at: Option<DateTime<Utc>>,
    pub cleaning_completed_at: Option<DateTime<Utc>>,
    pub splitting_completed_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub indexing_latency: Option<f64>,
    pub is_paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_by: Option<Uuid>,
    pub archived: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub doc_form: String,
    pub doc_language: Option<String>,
    pub doc_type: Option<String>,
    pub doc_metadata: Option<String>,
}

/// The columns of [`Document`], for SELECT lists.
pub const DOCUMENT_COLUMNS: &str = "id, tenant_id, dataset_id, position, data_source_type, data_source_info, \
     dataset_process_rule_id, batch, name, created_from, created_by, created_at, updated_at, upload_file_id, \
     word_count, tokens, indexing_status, processing_started_at, parsing_completed_at, cleaning_completed_at, \
     splitting_completed_at, completed_at, indexing_latency, is_paused, paused_at, error, stopped_at, enabled, \
     disabled_at, disabled_by, archived, archived_at, doc_form, doc_language, doc_type, doc_metadata";

fn ts(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |t| json!(t.timestamp()))
}

impl Document {
    /// What clients see of the indexing state (`paused` while paused and not finished).
    pub fn visible_status(&self) -> &str {
        if self.is_paused && !matches!(self.indexing_status.as_str(), "completed" | "error" | "waiting") {
            "paused"
        } else {
            &self.indexing_status
        }
    }

    /// Dify's `Document.display_status`.
    pub fn display_status(&self) -> &'static str {
        match self.indexing_status.as_str() {
            "waiting" => "queuing",
            _ if self.is_paused && self.indexing_status != "completed" && self.indexing_status != "error" => {
                "paused"
            }
            "parsing" | "cleaning" | "splitting" | "indexing" => "indexing",
            "error" => "error",
            "completed" if self.archived => "archived",
            "completed" if !self.enabled => "disabled",
            "completed" => "available",
            _ => "error",
        }
    }

    /// Dify's `doc_metadata` list: `[{id, name, type, value}]`, as stored.
    pub fn metadata_list(&self) -> Value {
        let values: Vec<Value> =
            self.doc_metadata.as_deref().and_then(|raw| serde_json::from_str(raw).ok()).unwrap_or_default();
        Value::Array(values)
    }

    /// The values by name, as retrieval records show them.
    pub fn metadata_dict(&self) -> Value {
        let list = self.metadata_list();
        let map: serde_json::Map<String, Value> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v["value"].clone())))
            .collect();
        Value::Object(map)
    }

    /// Dify's `Document` fields.
    pub fn json(&self, hit_count: i64) -> Value {
        let info: Value = self
            .data_source_info
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw).ok())
            .unwrap_or(Value::Null);
        json!({
            "id": self.id,
            "position": self.position,
            "data_source_type": self.data_source_type,
            "data_source_info": info,
            "data_source_detail_dict": {"upload_file": {"id": self.upload_file_id, "name": self.name}},
            "dataset_process_rule_id": self.dataset_process_rule_id,
            "name": self.name,
            "created_from": self.created_from,
            "created_by": self.created_by,
            "created_at": self.created_at.timestamp(),
            "tokens": self.tokens,
            "indexing_status": self.visible_status(),
            "error": self.error,
            "enabled": self.enabled,
            "disabled_at": ts(self.disabled_at),
            "disabled_by": self.disabled_by,
            "archived": self.archived,
            "display_status": self.display_status(),
            "word_count": self.word_count,
            "hit_count": hit_count,
            "doc_form": self.doc_form,
            "doc_metadata": self.metadata_list(),
            "summary_index_status": null,
            "need_summary": false,
        })
    }

    /// Dify's `DocumentDetail` fields.
    pub fn detail_json(&self, hit_count: i64, segment_count: i64, process_rule: Value) -> Value {
        let mut body = self.json(hit_count);
        let extra = json!({
            "dataset_process_rule": process_rule,
            "document_process_rule": process_rule,
            "completed_at": ts(self.completed_at),
            "updated_at": self.updated_at.timestamp(),
            "indexing_latency": self.indexing_latency,
            "doc_type": self.doc_type,
            "segment_count": segment_count,
            "average_segment_length": if segment_count > 0 { i64::from(self.word_count) / segment_count } else { 0 },
            "doc_language": self.doc_language,
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    }

    /// Dify's `DocumentStatus` fields (indexing-status).
    pub fn status_json(&self, completed_segments: i64, total_segments: i64) -> Value {
        json!({
            "id": self.id,
            "indexing_status": self.visible_status(),
            "processing_started_at": ts(self.processing_started_at),
            "parsing_completed_at": ts(self.parsing_completed_at),
            "cleaning_completed_at": ts(self.cleaning_completed_at),
            "splitting_completed_at": ts(self.splitting_completed_at),
            "completed_at": ts(self.completed_at),
            "paused_at": ts(self.paused_at),
            "error": self.error,
            "stopped_at": ts(self.stopped_at),
            "completed_segments": completed_segments,
            "total_segments": total_segments,
        })
    }
}

/// A segment (chunk) of a document.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Segment {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub dataset_id: Uuid,
    pub document_id: Uuid,
    pub position: i32,
    pub content: String,
    pub answer: Option<String>,
    pub word_count: i32,
    pub tokens: i32,
    pub keywords: Option<String>,
    pub index_node_id: String,
    pub index_node_hash: String,
    pub hit_count: i32,
    pub enabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_by: Option<Uuid>,
    pub status: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
    pub indexing_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// The columns of [`Segment`], for SELECT lists.
pub const SEGMENT_COLUMNS: &str = "id, tenant_id, dataset_id, document_id, position, content, answer, word_count, \
     tokens, keywords, index_node_id, index_node_hash, hit_count, enabled, disabled_at, disabled_by, status, \
     created_by, created_at, updated_at, updated_by, indexing_at, completed_at, error";

impl Segment {
    /// Dify's `Segment` fields.
    pub fn json(&self) -> Value {
        let keywords: Value = self
            .keywords
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw).ok())
            .unwrap_or_else(|| json!([]));
        json!({
            "id": self.id,
            "position": self.position,
            "document_id": self.document_id,
            "content": self.content,
            "sign_content": self.content,
            "answer": self.answer,
            "word_count": self.word_count,
            "tokens": self.tokens,
            "keywords": keywords,
            "index_node_id": self.index_node_id,
            "index_node_hash": self.index_node_hash,
            "hit_count": self.hit_count,
            "enabled": self.enabled,
            "disabled_at": ts(self.disabled_at),
            "disabled_by": self.disabled_by,
            "status": self.status,
            "created_by": self.created_by,
            "created_at": self.created_at.timestamp(),
            "updated_at": self.updated_at.timestamp(),
            "updated_by": self.updated_by,
            "indexing_at": ts(self.indexing_at),
            "completed_at": ts(self.completed_at),
            "error": self.error,
            "stopped_at": null,
            "child_chunks": [],
            "attachments": [],
            "summary": null,
        })
    }
}

/// A child chunk of a segment (hierarchical_model documents).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChildChunk {
    pub id: Uuid,
    pub segment_id: Uuid,
    pub document_id: Uuid,
    pub position: i32,
    pub content: String,
    pub word_count: i32,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`ChildChunk`], for SELECT lists.
pub const CHILD_CHUNK_COLUMNS: &str =
    "id, segment_id, document_id, position, content, word_count, type, created_at, updated_at";

impl ChildChunk {
    /// Dify's `ChildChunk` fields.
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "segment_id": self.segment_id,
            "content": self.content,
            "position": self.position,
            "word_count": self.word_count,
            "type": self.kind,
            "created_at": self.created_at.timestamp(),
            "updated_at": self.updated_at.timestamp(),
        })
    }
}

impl Segment {
    /// Dify's `Segment` fields with the segment's child chunks.
    pub fn json_with(&self, children: &[ChildChunk]) -> Value {
        let mut body = self.json();
        body["child_chunks"] =
            children.iter().filter(|c| c.segment_id == self.id).map(ChildChunk::json).collect();
        body
    }
}
