//! The OpenAPI shapes of what the Knowledge API answers. Handlers build their JSON in Dify's
//! shapes (see `model.rs`, `documents.rs`); these types describe that JSON for the spec
//! only, and `tests/openapi.rs` checks real responses against them.
#![allow(dead_code)] // described, never built: the handlers' JSON is the instance

use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `{id}`: a dataset.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DatasetPath {
    /// The dataset id.
    pub id: Uuid,
}

/// `{id}/documents/{document}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DocumentPath {
    /// The dataset id.
    pub id: Uuid,
    /// The document id.
    pub document: Uuid,
}

/// `{id}/documents/{batch}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BatchPath {
    /// The dataset id.
    pub id: Uuid,
    /// The batch a create or update answered with.
    pub batch: String,
}

/// `{id}/documents/{document}/segments/{segment}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SegmentPath {
    pub id: Uuid,
    pub document: Uuid,
    /// The segment id.
    pub segment: Uuid,
}

/// `…/segments/{segment}/child_chunks/{child}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChildChunkPath {
    pub id: Uuid,
    pub document: Uuid,
    pub segment: Uuid,
    /// The child chunk id.
    pub child: Uuid,
}

/// Paging and a keyword filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// From 1 (default 1).
    pub page: Option<u32>,
    /// 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Matches names (or contents), case-insensitive.
    pub keyword: Option<String>,
}

/// A tag on a dataset.
#[derive(ToSchema)]
pub struct TagRef {
    pub id: Uuid,
    pub name: String,
    #[schema(example = "knowledge")]
    pub r#type: String,
}

/// Dify's `DatasetDetail`.
#[derive(ToSchema)]
pub struct DatasetDetail {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    #[schema(example = "vendor")]
    pub provider: String,
    #[schema(example = "only_me")]
    pub permission: String,
    pub data_source_type: Option<String>,
    /// `economy` or `high_quality`; fixed by the first document.
    pub indexing_technique: Option<String>,
    pub app_count: i64,
    pub document_count: i64,
    pub word_count: i64,
    pub created_by: Uuid,
    pub author_name: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_by: Option<Uuid>,
    pub updated_at: i64,
    pub embedding_model: Option<String>,
    pub embedding_model_provider: Option<String>,
    pub embedding_available: bool,
    /// `search_method`, `top_k`, `score_threshold_enabled`, `score_threshold`, reranking.
    pub retrieval_model_dict: Value,
    pub summary_index_setting: Value,
    pub tags: Vec<TagRef>,
    /// `text_model` or `hierarchical_model`; fixed by the first document.
    pub doc_form: Option<String>,
    pub external_knowledge_info: Value,
    pub external_retrieval_model: Value,
    pub doc_metadata: Vec<Value>,
    pub built_in_field_enabled: bool,
    pub runtime_mode: String,
    pub icon_info: Value,
    pub is_published: bool,
    pub total_documents: i64,
    pub total_available_documents: i64,
    pub enable_api: bool,
    pub is_multimodal: bool,
    /// GET and PATCH on /v1 only.
    pub partial_member_list: Option<Vec<Value>>,
}

/// A page of datasets.
#[derive(ToSchema)]
pub struct DatasetList {
    pub data: Vec<DatasetDetail>,
    pub has_more: bool,
    pub limit: u32,
    pub total: i64,
    pub page: u32,
}

/// A metadata value on a document.
#[derive(ToSchema)]
pub struct MetadataValue {
    pub id: Uuid,
    pub name: String,
    /// `string`, `number` or `time`.
    pub r#type: String,
    pub value: Value,
}

/// Dify's `Document`.
#[derive(ToSchema)]
pub struct Document {
    pub id: Uuid,
    pub position: i32,
    #[schema(example = "upload_file")]
    pub data_source_type: String,
    pub data_source_info: Value,
    pub data_source_detail_dict: Value,
    pub dataset_process_rule_id: Option<Uuid>,
    pub name: String,
    #[schema(example = "api")]
    pub created_from: String,
    pub created_by: Uuid,
    pub created_at: i64,
    pub tokens: i32,
    /// waiting, parsing, cleaning, splitting, indexing, completed, paused or error.
    pub indexing_status: String,
    pub error: Option<String>,
    pub enabled: bool,
    pub disabled_at: Option<i64>,
    pub disabled_by: Option<Uuid>,
    pub archived: bool,
    /// queuing, paused, indexing, error, available, disabled or archived.
    pub display_status: String,
    pub word_count: i32,
    pub hit_count: i64,
    pub doc_form: String,
    pub doc_metadata: Vec<MetadataValue>,
    pub need_summary: bool,
}

/// Dify's `DocumentDetail`: the document and its processing.
#[derive(ToSchema)]
pub struct DocumentDetail {
    #[schema(inline)]
    #[serde(flatten)]
    pub document: Document,
    pub dataset_process_rule: Value,
    pub document_process_rule: Value,
    pub completed_at: Option<i64>,
    pub updated_at: i64,
    pub indexing_latency: Option<f64>,
    pub doc_type: Option<String>,
    pub segment_count: i64,
    pub average_segment_length: i64,
    pub doc_language: Option<String>,
}

/// A created or updated document and the batch to poll.
#[derive(ToSchema)]
pub struct DocumentBatch {
    pub document: Document,
    /// For `GET /datasets/{id}/documents/{batch}/indexing-status`.
    pub batch: String,
}

/// A page of documents.
#[derive(ToSchema)]
pub struct DocumentList {
    pub data: Vec<Document>,
    pub has_more: bool,
    pub limit: u32,
    pub total: i64,
    pub page: u32,
}

/// Dify's `DocumentStatus`.
#[derive(ToSchema)]
pub struct DocumentStatus {
    pub id: Uuid,
    pub indexing_status: String,
    pub processing_started_at: Option<i64>,
    pub parsing_completed_at: Option<i64>,
    pub cleaning_completed_at: Option<i64>,
    pub splitting_completed_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub paused_at: Option<i64>,
    pub error: Option<String>,
    pub stopped_at: Option<i64>,
    pub completed_segments: i64,
    pub total_segments: i64,
}

/// The documents of a batch.
#[derive(ToSchema)]
pub struct BatchStatus {
    pub data: Vec<DocumentStatus>,
}

/// Dify's `ChildChunk`.
#[derive(ToSchema)]
pub struct ChildChunk {
    pub id: Uuid,
    pub segment_id: Uuid,
    pub content: String,
    pub position: i32,
    pub word_count: i32,
    /// `automatic` (made by the splitter) or `customized`.
    pub r#type: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Dify's `Segment`.
#[derive(ToSchema)]
pub struct Segment {
    pub id: Uuid,
    pub position: i32,
    pub document_id: Uuid,
    pub content: String,
    pub sign_content: String,
    pub answer: Option<String>,
    pub word_count: i32,
    pub tokens: i32,
    pub keywords: Vec<String>,
    pub index_node_id: String,
    pub index_node_hash: String,
    pub hit_count: i32,
    pub enabled: bool,
    pub disabled_at: Option<i64>,
    pub disabled_by: Option<Uuid>,
    pub status: String,
    pub created_by: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
    pub updated_by: Option<Uuid>,
    pub indexing_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub error: Option<String>,
    pub child_chunks: Vec<ChildChunk>,
    pub attachments: Vec<Value>,
}

/// Segments just added.
#[derive(ToSchema)]
pub struct SegmentsAdded {
    pub data: Vec<Segment>,
    pub doc_form: String,
}

/// One segment.
#[derive(ToSchema)]
pub struct SegmentOne {
    pub data: Segment,
    pub doc_form: String,
}

/// A page of segments.
#[derive(ToSchema)]
pub struct SegmentList {
    pub data: Vec<Segment>,
    pub doc_form: String,
    pub total: i64,
    pub has_more: bool,
    pub limit: u32,
    pub page: u32,
}

/// One child chunk.
#[derive(ToSchema)]
pub struct ChildChunkOne {
    pub data: ChildChunk,
}

/// A page of child chunks.
#[derive(ToSchema)]
pub struct ChildChunkList {
    pub data: Vec<ChildChunk>,
    pub total: i64,
    pub total_pages: i64,
    pub page: u32,
    pub limit: u32,
}

/// The document a retrieved segment belongs to.
#[derive(ToSchema)]
pub struct RecordDocument {
    pub id: Uuid,
    pub data_source_type: String,
    pub name: String,
    pub doc_type: Option<String>,
    /// Metadata values by field name.
    pub doc_metadata: Value,
}

/// A retrieved segment with its document.
#[derive(ToSchema)]
pub struct RecordSegment {
    #[schema(inline)]
    #[serde(flatten)]
    pub segment: Segment,
    pub document: RecordDocument,
}

/// A child chunk that matched the query.
#[derive(ToSchema)]
pub struct ChildChunkHit {
    pub id: Uuid,
    pub content: String,
    pub position: i32,
    pub score: f64,
}

/// One retrieval record.
#[derive(ToSchema)]
pub struct Record {
    pub segment: RecordSegment,
    /// Hierarchical documents: the parent's children that matched, best first.
    pub child_chunks: Vec<ChildChunkHit>,
    /// 0 to 1.
    pub score: f64,
    pub tsne_position: Option<Value>,
    pub files: Vec<Value>,
}

/// The query as searched.
#[derive(ToSchema)]
pub struct QueryEcho {
    pub content: String,
}

/// Retrieval results.
#[derive(ToSchema)]
pub struct RetrieveResponse {
    pub query: QueryEcho,
    pub records: Vec<Record>,
}

/// Retrieval settings for one call.
#[derive(ToSchema)]
pub struct RetrievalModel {
    /// `keyword_search` (economy datasets' way) or `full_text_search`; `semantic_search` and
    /// `hybrid_search` search by keyword in economy datasets, as in Dify.
    pub search_method: Option<String>,
    /// 1 to 100.
    pub top_k: Option<u32>,
    pub score_threshold_enabled: Option<bool>,
    pub score_threshold: Option<f64>,
    pub reranking_enable: Option<bool>,
}

/// A retrieval.
#[derive(ToSchema)]
pub struct RetrieveRequest {
    /// At most 250 characters.
    pub query: String,
    pub retrieval_model: Option<RetrievalModel>,
}

/// `{url}`: a signed link to the document's file.
#[derive(ToSchema)]
pub struct DownloadUrl {
    pub url: String,
}

/// A dataset API key.
#[derive(ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    #[schema(example = "dataset")]
    pub r#type: String,
    /// The whole key right after creation; a hint afterwards.
    pub token: String,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

/// The tenant's dataset API keys.
#[derive(ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKey>,
}

/// `{field}`: a metadata field of a dataset.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FieldPath {
    pub id: Uuid,
    /// The metadata field id.
    pub field: Uuid,
}

/// A metadata field.
#[derive(ToSchema)]
pub struct MetadataField {
    pub id: Uuid,
    /// `string`, `number` or `time`.
    pub r#type: String,
    pub name: String,
}

/// A metadata field and how many documents have a value for it.
#[derive(ToSchema)]
pub struct MetadataFieldCount {
    pub id: Uuid,
    pub r#type: String,
    pub name: String,
    pub count: i64,
}

/// A dataset's metadata fields.
#[derive(ToSchema)]
pub struct MetadataList {
    pub doc_metadata: Vec<MetadataFieldCount>,
    pub built_in_field_enabled: bool,
}

/// A built-in field.
#[derive(ToSchema)]
pub struct BuiltInField {
    pub name: String,
    pub r#type: String,
}

/// The built-in fields.
#[derive(ToSchema)]
pub struct BuiltInFields {
    pub fields: Vec<BuiltInField>,
}

/// A knowledge tag.
#[derive(ToSchema)]
pub struct Tag {
    pub id: Uuid,
    pub name: String,
    #[schema(example = "knowledge")]
    pub r#type: String,
    /// How many datasets carry it (a string, as Dify sends it).
    pub binding_count: String,
}

/// A tag as a dataset lists it.
#[derive(ToSchema)]
pub struct TagName {
    pub id: Uuid,
    pub name: String,
}

/// A dataset's tags.
#[derive(ToSchema)]
pub struct DatasetTags {
    pub data: Vec<TagName>,
    pub total: i64,
}
