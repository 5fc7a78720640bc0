//! Dify's segment (chunk) routes under `/v1/datasets/{id}/documents/{doc}/segments`: add,
//! list, get, update (re-indexed at once) and delete.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::documents::Document;
use super::documents_repo::NewSegment;
use super::http::{ListQuery, ServiceKey, dataset_id, datasets, documents, paging};
use super::segments_repo as repo;
use super::service::DatasetsError;
use super::text;
use crate::http::AppState;
use crate::http::error::{ApiError, JsonBody};

fn invalid(message: impl Into<String>) -> ApiError {
    DatasetsError::InvalidParam(message.into()).into()
}

fn not_found(message: &str) -> ApiError {
    ApiError::coded(StatusCode::NOT_FOUND, "not_found", message)
}

/// The document named by the path, in a dataset this key may use.
async fn document(
    state: &AppState,
    key: &ServiceKey,
    dataset: &str,
    document: &str,
) -> Result<Document, ApiError> {
    let dataset = datasets(state).get_for_api(key.0.tenant_id, dataset_id(dataset)?).await?;
    let id = Uuid::parse_str(document).map_err(|_| ApiError::from(DatasetsError::DocumentNotFound))?;
    Ok(documents(state).get(dataset.dataset.id, id).await?)
}

/// Keywords as given (trimmed, lower-cased, de-duplicated), else extracted from the content.
fn keywords_for(content: &str, given: Option<&Vec<String>>) -> Vec<String> {
    match given.filter(|k| !k.is_empty()) {
        Some(list) => {
            let set: std::collections::BTreeSet<String> =
                list.iter().map(|k| k.trim().to_lowercase()).filter(|k| !k.is_empty()).collect();
            set.into_iter().collect()
        }
        None => text::keywords(content).into_iter().take(500).collect(),
    }
}

fn new_segment(content: &str, keywords: Option<&Vec<String>>) -> NewSegment {
    NewSegment {
        content: content.to_owned(),
        keywords: keywords_for(content, keywords),
        tokens: text::estimate_tokens(content) as i32,
        hash: hex::encode(Sha256::digest(content.as_bytes())),
    }
}

#[derive(Debug, Deserialize)]
struct NewSegmentArgs {
    content: Option<String>,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    keywords: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct CreateArgs {
    segments: Option<Vec<NewSegmentArgs>>,
}

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
    let mut segments = Vec::with_capacity(items.len());
    for item in &items {
        let content = item.content.as_deref().map(str::trim).unwrap_or_default();
        if content.is_empty() {
            return Err(invalid("Content is empty"));
        }
        let _ = &item.answer; // qa_model documents (which need answers) are not created by this version
        segments.push(new_segment(content, item.keywords.as_ref()));
    }
    let ids = repo::append(&state.db, &document, &segments, key.0.owner_id, Utc::now())
        .await
        .map_err(DatasetsError::from)?;
    let created = repo::find_many(&state.db, document.id, &ids).await.map_err(DatasetsError::from)?;
    Ok(Json(
        json!({"data": created.iter().map(|s| s.json()).collect::<Vec<_>>(), "doc_form": document.doc_form}),
    ))
}

#[derive(Debug, Deserialize)]
struct SegmentListQuery {
    #[serde(flatten)]
    paging: ListQuery,
    status: Option<String>,
}

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
    Ok(Json(json!({
        "data": rows.iter().map(|s| s.json()).collect::<Vec<_>>(),
        "doc_form": document.doc_form,
        "total": total,
        "has_more": i64::from(page) * i64::from(limit) < total,
        "limit": limit,
        "page": page,
    })))
}

async fn find(
    state: &AppState,
    document: &Document,
    segment: &str,
) -> Result<super::documents::Segment, ApiError> {
    let id = Uuid::parse_str(segment).map_err(|_| not_found("Segment not found."))?;
    repo::find(&state.db, document.id, id)
        .await
        .map_err(DatasetsError::from)?
        .ok_or_else(|| not_found("Segment not found."))
}

async fn get_one(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((ds, doc, seg)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let document = document(&state, &key, &ds, &doc).await?;
    let segment = find(&state, &document, &seg).await?;
    Ok(Json(json!({"data": segment.json(), "doc_form": document.doc_form})))
}

#[derive(Debug, Deserialize)]
struct SegmentChanges {
    content: Option<String>,
    answer: Option<String>,
    keywords: Option<Vec<String>>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct UpdateArgs {
    segment: Option<SegmentChanges>,
}

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
    let keywords = keywords_for(&segment.content, changes.keywords.as_ref());
    repo::update(&state.db, &segment, &keywords, now).await.map_err(DatasetsError::from)?;
    let segment = find(&state, &document, &seg).await?;
    Ok(Json(json!({"data": segment.json(), "doc_form": document.doc_form})))
}

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
pub fn service_routes() -> Router<AppState> {
    Router::new().route("/datasets/{id}/documents/{document}/segments", post(create).get(list)).route(
        "/datasets/{id}/documents/{document}/segments/{segment}",
        get(get_one).post(update).delete(delete),
    )
}
