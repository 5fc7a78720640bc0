//! Dify's segment (chunk) routes under `/v1/datasets/{id}/documents/{doc}/segments`: add,
//! list, get, update (re-indexed at once) and delete. Segments of hierarchical_model
//! documents carry child chunks, made by the document's process rule.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::child_chunks_repo as child_repo;
use super::documents::{ChildChunk, Document, Segment};
use super::documents_repo;
use super::http::{ListQuery, ServiceKey, dataset_id, datasets, documents, paging};
use super::indexing::{self, Hierarchy};
use super::segments_repo as repo;
use super::service::DatasetsError;
use super::text;
use crate::http::AppState;
use crate::http::error::{ApiError, JsonBody};
use crate::http::openapi::ServiceErrors;

fn invalid(message: impl Into<String>) -> ApiError {
    DatasetsError::InvalidParam(message.into()).into()
}

fn not_found(message: &str) -> ApiError {
    ApiError::coded(StatusCode::NOT_FOUND, "not_found", message)
}

/// The document named by the path, in a dataset this key may use.
pub(super) async fn document(
    state: &AppState,
    key: &ServiceKey,
    dataset: &str,
    document: &str,
) -> Result<Document, ApiError> {
    let dataset = datasets(state).get_for_api(key.0.tenant_id, dataset_id(dataset)?).await?;
    let id = Uuid::parse_str(document).map_err(|_| ApiError::from(DatasetsError::DocumentNotFound))?;
    Ok(documents(state).get(dataset.dataset.id, id).await?)
}

/// The rule that splits a hierarchical_model document's segments into child chunks.
async fn hierarchy(state: &AppState, document: &Document) -> Result<Option<Hierarchy>, ApiError> {
    if document.doc_form != "hierarchical_model" {
        return Ok(None);
    }
    let stored = match document.dataset_process_rule_id {
        Some(id) => documents_repo::find_process_rule(&state.db, id).await.map_err(DatasetsError::from)?,
        None => None,
    };
    let rule = match stored {
        Some(stored) => indexing::rule_from(&stored.mode, stored.rules.as_deref()),
        None => indexing::rule_from("automatic", None),
    };
    // A hierarchical document always has a hierarchical rule; Dify's default child size else.
    Ok(Some(rule.hierarchy.unwrap_or(Hierarchy {
        full_doc: false,
        children: text::Splitting { separator: Some("\\n".into()), max_tokens: 200, chunk_overlap: 0 },
    })))
}

/// The child chunks of these segments; none (and no query) for a plain text document.
async fn children(state: &AppState, document: &Document, ids: &[Uuid]) -> Result<Vec<ChildChunk>, ApiError> {
    if document.doc_form != "hierarchical_model" {
        return Ok(Vec::new());
    }
    Ok(child_repo::for_segments(&state.db, ids).await.map_err(DatasetsError::from)?)
}

fn children_of(content: &str, hierarchy: Option<&Hierarchy>) -> Vec<String> {
    hierarchy.map(|h| text::split(content, &h.children)).unwrap_or_default()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct NewSegmentArgs {
    content: Option<String>,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    keywords: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct CreateArgs {
    segments: Option<Vec<NewSegmentArgs>>,
}

/// Adds segments to a completed, enabled document (indexed at once; the segments of
/// hierarchical documents get child chunks by the document's rule).
#[utoipa::path(post, path = "/datasets/{id}/documents/{document}/segments", tag = "segments", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DocumentPath), request_body = CreateArgs,
    responses((status = 200, body = crate::datasets::schemas::SegmentsAdded), ServiceErrors))]
async fn create(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((ds, doc)): Path<(String, String)>,
    JsonBody(body): JsonBody<CreateArgs>,
) -> Result<Json<Value>, ApiError> {
    let document = document(&state, &key, &ds, &doc).await?;
    if document.indexing_status != "completed" {
        return Err(not_found("Document is not completed."));
    }
    if !document.enabled {
        return Err(not_found("Document is disabled."));
    }
    let items = body.segments.filter(|s| !s.is_empty()).ok_or_else(|| invalid("segments is required."))?;
    let limit = state.settings.knowledge.dataset_max_segments_per_request;
    if limit > 0 && items.len() > limit as usize {
        return Err(invalid(format!("Exceeded maximum segments per request ({limit}).")));
    }
    let hierarchy = hierarchy(&state, &document).await?;
    let mut segments = Vec::with_capacity(items.len());
    for item in &items {
        let content = item.content.as_deref().map(str::trim).unwrap_or_default();
        if content.is_empty() {
            return Err(invalid("Content is empty"));
        }
        let _ = &item.answer; // qa_model documents (which need answers) are not created by this version
        let children = children_of(content, hierarchy.as_ref());
        segments.push(indexing::new_segment(content.to_owned(), children, item.keywords.as_deref()));
    }
    let ids = repo::append(&state.db, &document, &segments, key.0.owner_id, Utc::now())
        .await
        .map_err(DatasetsError::from)?;
    let created = repo::find_many(&state.db, document.id, &ids).await.map_err(DatasetsError::from)?;
    let children = children(&state, &document, &ids).await?;
    Ok(Json(json!({
        "data": created.iter().map(|s| s.json_with(&children)).collect::<Vec<_>>(),
        "doc_form": document.doc_form,
    })))
}

#[derive(Debug, Deserialize)]
struct SegmentListQuery {
    #[serde(flatten)]
    paging: ListQuery,
    status: Option<String>,
}

#[utoipa::path(get, path = "/datasets/{id}/documents/{document}/segments", tag = "segments", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DocumentPath, crate::datasets::schemas::PageQuery, ("status" = Option<String>, Query, description = "Only segments in this status")),
    responses((status = 200, body = crate::datasets::schemas::SegmentList), ServiceErrors))]
async fn list(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((ds, doc)): Path<(String, String)>,
    Query(query): Query<SegmentListQuery>,
) -> Result<Json<Value>, ApiError> {
    let document = document(&state, &key, &ds, &doc).await?;
    let (page, limit) = paging(&query.paging)?;
    let status = query.status.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let keyword = query.paging.keyword.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let (rows, total) = repo::list(&state.db, document.id, status, keyword, page, limit)
        .await
        .map_err(DatasetsError::from)?;
    let ids: Vec<Uuid> = rows.iter().map(|s| s.id).collect();
    let children = children(&state, &document, &ids).await?;
    Ok(Json(json!({
        "data": rows.iter().map(|s| s.json_with(&children)).collect::<Vec<_>>(),
        "doc_form": document.doc_form,
        "total": total,
        "has_more": i64::from(page) * i64::from(limit) < total,
        "limit": limit,
        "page": page,
    })))
}

pub(super) async fn find(state: &AppState, document: &Document, segment: &str) -> Result<Segment, ApiError> {
    let id = Uuid::parse_str(segment).map_err(|_| not_found("Segment not found."))?;
    repo::find(&state.db, document.id, id)
        .await
        .map_err(DatasetsError::from)?
        .ok_or_else(|| not_found("Segment not found."))
}

#[utoipa::path(get, path = "/datasets/{id}/documents/{document}/segments/{segment}", tag = "segments", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::SegmentPath),
    responses((status = 200, body = crate::datasets::schemas::SegmentOne), ServiceErrors))]
async fn get_one(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((ds, doc, seg)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let document = document(&state, &key, &ds, &doc).await?;
    let segment = find(&state, &document, &seg).await?;
    segment_response(&state, &document, &segment).await
}

/// `{data: Segment with its child chunks, doc_form}`.
async fn segment_response(
    state: &AppState,
    document: &Document,
    segment: &Segment,
) -> Result<Json<Value>, ApiError> {
    let children = children(state, document, &[segment.id]).await?;
    Ok(Json(json!({"data": segment.json_with(&children), "doc_form": document.doc_form})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct SegmentChanges {
    content: Option<String>,
    answer: Option<String>,
    keywords: Option<Vec<String>>,
    enabled: Option<bool>,
    #[serde(default)]
    regenerate_child_chunks: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct UpdateArgs {
    segment: Option<SegmentChanges>,
}

/// Edits a segment; it is re-indexed at once.
#[utoipa::path(post, path = "/datasets/{id}/documents/{document}/segments/{segment}", tag = "segments", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::SegmentPath), request_body = UpdateArgs,
    responses((status = 200, body = crate::datasets::schemas::SegmentOne), ServiceErrors))]
async fn update(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((ds, doc, seg)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<UpdateArgs>,
) -> Result<Json<Value>, ApiError> {
    let document = document(&state, &key, &ds, &doc).await?;
    let mut segment = find(&state, &document, &seg).await?;
    let changes = body.segment.ok_or_else(|| invalid("segment is required."))?;
    let now = Utc::now();
    let content_changed = changes.content.as_deref().is_some_and(|c| c.trim() != segment.content);
    if let Some(content) = changes.content {
        let content = content.trim().to_owned();
        if content.is_empty() {
            return Err(invalid("Content is empty"));
        }
        segment.word_count = text::word_count(&content) as i32;
        segment.tokens = text::estimate_tokens(&content) as i32;
        segment.index_node_hash = hex::encode(Sha256::digest(content.as_bytes()));
        segment.content = content;
    }
    if changes.answer.is_some() {
        segment.answer = changes.answer;
    }
    if let Some(enabled) = changes.enabled {
        segment.enabled = enabled;
        segment.disabled_at = (!enabled).then_some(now);
        segment.disabled_by = (!enabled).then_some(key.0.owner_id);
    }
    segment.updated_by = Some(key.0.owner_id);
    // Dify regenerates child chunks only when asked to, and only for new content.
    let hierarchy = hierarchy(&state, &document).await?;
    let regenerated = (hierarchy.is_some() && changes.regenerate_child_chunks && content_changed)
        .then(|| children_of(&segment.content, hierarchy.as_ref()));
    let children: Vec<String> = match &regenerated {
        Some(children) => children.clone(),
        None => children(&state, &document, &[segment.id]).await?.into_iter().map(|c| c.content).collect(),
    };
    let index = text::segment_index(
        &segment.content,
        &children,
        changes.keywords.as_deref(),
        indexing::MAX_KEYWORDS_PER_SEGMENT,
    );
    repo::update(&state.db, &document, &segment, &index, regenerated.as_deref(), now)
        .await
        .map_err(DatasetsError::from)?;
    let segment = find(&state, &document, &seg).await?;
    segment_response(&state, &document, &segment).await
}

#[utoipa::path(delete, path = "/datasets/{id}/documents/{document}/segments/{segment}", tag = "segments", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::SegmentPath),
    responses((status = 204, description = "Deleted"), ServiceErrors))]
async fn delete(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((ds, doc, seg)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let document = document(&state, &key, &ds, &doc).await?;
    let segment = find(&state, &document, &seg).await?;
    repo::delete(&state.db, document.id, segment.id, Utc::now()).await.map_err(DatasetsError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The segment routes (mounted under `/v1`).
pub fn service_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(get_one, update, delete))
}
