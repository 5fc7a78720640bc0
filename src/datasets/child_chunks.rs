//! Dify's child-chunk routes under `…/segments/{segment}/child_chunks`: list, add, edit and
//! delete the child chunks of a hierarchical_model document's segment. Each change
//! re-indexes the parent segment at once.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::child_chunks_repo as repo;
use super::documents::{ChildChunk, Document, Segment};
use super::http::{ListQuery, ServiceKey, paging};
use super::segments::{document, find};
use super::service::DatasetsError;
use crate::http::AppState;
use crate::http::error::{ApiError, JsonBody};
use crate::http::openapi::ServiceErrors;

fn invalid(message: impl Into<String>) -> ApiError {
    DatasetsError::InvalidParam(message.into()).into()
}

/// The document and segment named by the path; child chunks exist only in hierarchical ones.
async fn parent(
    state: &AppState,
    key: &ServiceKey,
    (ds, doc, seg): (&str, &str, &str),
) -> Result<(Document, Segment), ApiError> {
    let document = document(state, key, ds, doc).await?;
    let segment = find(state, &document, seg).await?;
    if document.doc_form != "hierarchical_model" {
        return Err(invalid("Child chunks belong to documents in hierarchical_model."));
    }
    Ok((document, segment))
}

async fn child(state: &AppState, segment: &Segment, id: &str) -> Result<ChildChunk, ApiError> {
    let missing = || ApiError::coded(StatusCode::NOT_FOUND, "not_found", "Child chunk not found.");
    let id = Uuid::parse_str(id).map_err(|_| missing())?;
    repo::find(&state.db, segment.id, id).await.map_err(DatasetsError::from)?.ok_or_else(missing)
}

/// `{content}`, trimmed and required.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct ContentArgs {
    /// The child chunk's text.
    content: Option<String>,
}

impl ContentArgs {
    fn content(self) -> Result<String, ApiError> {
        let content = self.content.as_deref().map(str::trim).unwrap_or_default();
        if content.is_empty() {
            return Err(invalid("content is required."));
        }
        Ok(content.to_owned())
    }
}

#[utoipa::path(get, path = "/datasets/{id}/documents/{document}/segments/{segment}/child_chunks", tag = "segments", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::SegmentPath, crate::datasets::schemas::PageQuery),
    responses((status = 200, body = crate::datasets::schemas::ChildChunkList), ServiceErrors))]
async fn list(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((ds, doc, seg)): Path<(String, String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (_, segment) = parent(&state, &key, (&ds, &doc, &seg)).await?;
    let (page, limit) = paging(&query)?;
    let keyword = query.keyword.as_deref().map(str::trim).filter(|k| !k.is_empty());
    let (rows, total) =
        repo::list(&state.db, segment.id, keyword, page, limit).await.map_err(DatasetsError::from)?;
    Ok(Json(json!({
        "data": rows.iter().map(ChildChunk::json).collect::<Vec<_>>(),
        "total": total,
        "total_pages": (total + i64::from(limit) - 1) / i64::from(limit),
        "page": page,
        "limit": limit,
    })))
}

/// Adds a `customized` child chunk; the parent is re-indexed at once.
#[utoipa::path(post, path = "/datasets/{id}/documents/{document}/segments/{segment}/child_chunks", tag = "segments", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::SegmentPath), request_body = ContentArgs,
    responses((status = 200, body = crate::datasets::schemas::ChildChunkOne), ServiceErrors))]
async fn create(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((ds, doc, seg)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<ContentArgs>,
) -> Result<Json<Value>, ApiError> {
    let (_, segment) = parent(&state, &key, (&ds, &doc, &seg)).await?;
    let content = body.content()?;
    let id = repo::insert(&state.db, &segment, &content, key.0.owner_id, Utc::now())
        .await
        .map_err(DatasetsError::from)?;
    let created = child(&state, &segment, &id.to_string()).await?;
    Ok(Json(json!({"data": created.json()})))
}

#[utoipa::path(patch, path = "/datasets/{id}/documents/{document}/segments/{segment}/child_chunks/{child}", tag = "segments", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::ChildChunkPath), request_body = ContentArgs,
    responses((status = 200, body = crate::datasets::schemas::ChildChunkOne), ServiceErrors))]
async fn update(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((ds, doc, seg, cc)): Path<(String, String, String, String)>,
    JsonBody(body): JsonBody<ContentArgs>,
) -> Result<Json<Value>, ApiError> {
    let (_, segment) = parent(&state, &key, (&ds, &doc, &seg)).await?;
    let existing = child(&state, &segment, &cc).await?;
    let content = body.content()?;
    repo::update(&state.db, &segment, existing.id, &content, key.0.owner_id, Utc::now())
        .await
        .map_err(DatasetsError::from)?;
    let updated = child(&state, &segment, &cc).await?;
    Ok(Json(json!({"data": updated.json()})))
}

#[utoipa::path(delete, path = "/datasets/{id}/documents/{document}/segments/{segment}/child_chunks/{child}", tag = "segments", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::ChildChunkPath),
    responses((status = 204, description = "Deleted"), ServiceErrors))]
async fn delete(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((ds, doc, seg, cc)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (_, segment) = parent(&state, &key, (&ds, &doc, &seg)).await?;
    let existing = child(&state, &segment, &cc).await?;
    repo::delete(&state.db, &segment, existing.id, Utc::now()).await.map_err(DatasetsError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The child-chunk routes (mounted under `/v1`).
pub fn service_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(update, delete))
}
