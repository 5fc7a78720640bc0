//! Dataset routes: the console's (API keys, API access toggle, create/list/get/delete) and
//! Dify's Knowledge Service API under `/v1`, authenticated by dataset API keys.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::model::DatasetDetail;
use super::repo::DatasetRow;
use super::service::{CreateDataset, Datasets, DatasetsError, KeyScope, UpdateDataset};
use crate::accounts::http::ConsoleSession;
use crate::accounts::model::TenantRole;
use crate::http::AppState;
use crate::http::error::{ApiError, JsonBody};
use crate::http::openapi::{ConsoleErrors, ErrorBody, ServiceErrors, Success};
use utoipa_axum::{router::OpenApiRouter, routes};

impl From<DatasetsError> for ApiError {
    fn from(error: DatasetsError) -> Self {
        use DatasetsError as E;
        let (status, code) = match &error {
            E::NotFound | E::DocumentNotFound => (StatusCode::NOT_FOUND, "not_found"),
            E::InvalidMetadata => (StatusCode::BAD_REQUEST, "invalid_metadata"),
            E::InvalidAction => (StatusCode::BAD_REQUEST, "invalid_action"),
            E::ArchivedImmutable => (StatusCode::FORBIDDEN, "archived_document_immutable"),
            E::DocumentAlreadyFinished => (StatusCode::BAD_REQUEST, "document_already_finished"),
            E::NoFileUploaded => (StatusCode::BAD_REQUEST, "no_file_uploaded"),
            E::TooManyFiles => (StatusCode::BAD_REQUEST, "too_many_files"),
            E::FilenameMissing => (StatusCode::BAD_REQUEST, "filename_not_exists_error"),
            E::FileTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "file_too_large"),
            E::UnsupportedFileType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_file_type"),
            E::ExtensionBlocked => (StatusCode::BAD_REQUEST, "file_extension_blocked"),
            E::DocumentIndexing => (StatusCode::BAD_REQUEST, "document_indexing"),
            E::KeyNotFound => (StatusCode::NOT_FOUND, "not_found"),
            E::NameDuplicate => (StatusCode::CONFLICT, "dataset_name_duplicate"),
            E::InvalidParam(_) => (StatusCode::BAD_REQUEST, "invalid_param"),
            E::ProviderNotInitialized | E::LlmNotInitialized => {
                (StatusCode::BAD_REQUEST, "provider_not_initialize")
            }
            E::Forbidden | E::ApiDisabled => (StatusCode::FORBIDDEN, "forbidden"),
            E::TooManyKeys => (StatusCode::BAD_REQUEST, "max_keys_exceeded"),
            E::InvalidKey | E::TenantGone => (StatusCode::UNAUTHORIZED, "unauthorized"),
            E::Repo(_) => {
                tracing::error!(%error, "dataset operation failed");
                return ApiError::Internal;
            }
        };
        ApiError::coded(status, code, error.to_string())
    }
}

pub(super) fn datasets(state: &AppState) -> Datasets<'_> {
    Datasets { db: &state.db }
}

pub(super) fn documents(state: &AppState) -> super::documents_service::Documents<'_> {
    super::documents_service::Documents { db: &state.db, storage: &state.storage, settings: &state.settings }
}

/// Dify's `DatasetDetail` of a dataset: its row, document figures and tags.
pub(super) async fn dataset_json(state: &AppState, row: &DatasetRow) -> Result<Value, ApiError> {
    let id = row.dataset.id;
    let figures = super::repo::dataset_figures(&state.db, id).await.map_err(DatasetsError::from)?;
    let tags = super::tags::of_datasets(&state.db, &[id]).await.map_err(DatasetsError::from)?.remove(&id);
    let detail = row.dataset.detail(row.author_name.as_deref(), figures, tags.as_deref().unwrap_or_default());
    serde_json::to_value(detail).map_err(|error| {
        tracing::error!(%error, "could not serialise a dataset");
        ApiError::Internal
    })
}

/// A page of datasets, serialised straight into the response.
#[derive(serde::Serialize)]
struct DatasetPage<'a> {
    data: Vec<DatasetDetail<'a>>,
    has_more: bool,
    limit: u32,
    total: i64,
    page: u32,
}

/// A path id that is not a UUID names no dataset.
pub(super) fn dataset_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| DatasetsError::NotFound.into())
}

/// A `/v1` caller: a valid `Authorization: Bearer dataset-…` key, acting as its tenant's owner.
pub struct ServiceKey(pub KeyScope);

impl FromRequestParts<AppState> for ServiceKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauthorized = |message: &str| ApiError::coded(StatusCode::UNAUTHORIZED, "unauthorized", message);
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let Some((scheme, token)) = header.trim().split_once(' ') else {
            return Err(unauthorized("Authorization header must be provided and start with 'Bearer'"));
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized("Authorization scheme must be 'Bearer'"));
        }
        let scope = datasets(state).authenticate_key(token.trim(), &state.api_keys).await?;
        Ok(Self(scope))
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    pub page: Option<String>,
    pub limit: Option<String>,
    pub keyword: Option<String>,
}

/// Dify's paging: `page` from 1, `limit` 1..=100 (larger values are clamped, as Dify does).
pub(super) fn paging(query: &ListQuery) -> Result<(u32, u32), ApiError> {
    let number = |raw: &Option<String>, name: &str, default: u32| match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::from(DatasetsError::InvalidParam(format!("{name} must be a positive integer.")))
        }),
    };
    Ok((number(&query.page, "page", 1)?, number(&query.limit, "limit", 20)?.min(100)))
}

/// `tag_ids` from the query string, repeated (`tag_ids=a&tag_ids=b`, as Dify reads them) or
/// comma-separated; `None` when absent. Ids that are not UUIDs match no tag.
fn tag_ids(raw: Option<&str>) -> Option<Vec<Uuid>> {
    let values: Vec<String> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "tag_ids" || key == "tag_ids[]")
        .flat_map(|(_, value)| value.split(',').map(|v| v.trim().to_owned()).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return None;
    }
    Some(values.iter().filter_map(|v| Uuid::parse_str(v).ok()).collect())
}

async fn list(
    state: &AppState,
    tenant_id: Uuid,
    query: &ListQuery,
    raw: Option<&str>,
) -> Result<Response, ApiError> {
    let (page, limit) = paging(query)?;
    let tag_filter = tag_ids(raw);
    let (rows, total) =
        datasets(state).list(tenant_id, query.keyword.as_deref(), tag_filter.as_deref(), page, limit).await?;
    let ids: Vec<Uuid> = rows.iter().map(|(row, _)| row.dataset.id).collect();
    let tags = super::tags::of_datasets(&state.db, &ids).await.map_err(DatasetsError::from)?;
    let data = rows
        .iter()
        .map(|(row, figures)| {
            let tags = tags.get(&row.dataset.id).map(Vec::as_slice).unwrap_or_default();
            row.dataset.detail(row.author_name.as_deref(), *figures, tags)
        })
        .collect();
    let has_more = i64::from(page) * i64::from(limit) < total;
    Ok(Json(DatasetPage { data, has_more, limit, total, page }).into_response())
}

// ---- /v1 ----------------------------------------------------------------------------------

#[utoipa::path(get, path = "/datasets", tag = "datasets", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::PageQuery, ("tag_ids" = Option<Vec<Uuid>>, Query, description = "Only datasets with all these tags (repeated or comma-separated)")),
    responses((status = 200, body = crate::datasets::schemas::DatasetList), ServiceErrors))]
async fn v1_list(
    State(state): State<AppState>,
    ServiceKey(key): ServiceKey,
    Query(query): Query<ListQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    list(&state, key.tenant_id, &query, raw.as_deref()).await
}

#[utoipa::path(post, path = "/datasets", tag = "datasets", security(("dataset_api_key" = [])), request_body = CreateDataset,
    responses((status = 200, body = crate::datasets::schemas::DatasetDetail),
        (status = 409, description = "`dataset_name_duplicate`", body = ErrorBody), ServiceErrors))]
async fn v1_create(
    State(state): State<AppState>,
    ServiceKey(key): ServiceKey,
    JsonBody(body): JsonBody<CreateDataset>,
) -> Result<Json<Value>, ApiError> {
    let row = datasets(&state).create(key.tenant_id, key.owner_id, body).await?;
    Ok(Json(dataset_json(&state, &row).await?))
}

#[utoipa::path(get, path = "/datasets/{id}", tag = "datasets", security(("dataset_api_key" = [])), params(crate::datasets::schemas::DatasetPath),
    responses((status = 200, body = crate::datasets::schemas::DatasetDetail), ServiceErrors))]
async fn v1_get(
    State(state): State<AppState>,
    ServiceKey(key): ServiceKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = datasets(&state).get_for_api(key.tenant_id, dataset_id(&id)?).await?;
    let mut body = dataset_json(&state, &row).await?;
    body["partial_member_list"] = json!([]);
    Ok(Json(body))
}

#[utoipa::path(patch, path = "/datasets/{id}", tag = "datasets", security(("dataset_api_key" = [])), params(crate::datasets::schemas::DatasetPath),
    request_body = UpdateDataset,
    responses((status = 200, body = crate::datasets::schemas::DatasetDetail),
        (status = 409, description = "`dataset_name_duplicate`", body = ErrorBody), ServiceErrors))]
async fn v1_update(
    State(state): State<AppState>,
    ServiceKey(key): ServiceKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateDataset>,
) -> Result<Json<Value>, ApiError> {
    let id = dataset_id(&id)?;
    datasets(&state).get_for_api(key.tenant_id, id).await?;
    let row = datasets(&state).update(key.tenant_id, key.owner_id, id, body).await?;
    let mut body = dataset_json(&state, &row).await?;
    body["partial_member_list"] = json!([]);
    Ok(Json(body))
}

#[utoipa::path(delete, path = "/datasets/{id}", tag = "datasets", security(("dataset_api_key" = [])), params(crate::datasets::schemas::DatasetPath),
    responses((status = 204, description = "Deleted; its files are removed by a `dataset` queue task"), ServiceErrors))]
async fn v1_delete(
    State(state): State<AppState>,
    ServiceKey(key): ServiceKey,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = datasets(&state).get_for_api(key.tenant_id, dataset_id(&id)?).await?;
    documents(&state).delete_dataset(&row.dataset, state.jobs.get()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The Knowledge API routes (mounted under `/v1`).
pub fn service_routes() -> OpenApiRouter<AppState> {
    super::documents_http::service_routes()
        .merge(super::segments::service_routes())
        .merge(super::child_chunks::service_routes())
        .merge(super::metadata::service_routes())
        .merge(super::tags::service_routes())
        .merge(super::files::service_routes())
        .routes(routes!(v1_list, v1_create))
        .routes(routes!(v1_get, v1_update, v1_delete))
}

// ---- console ------------------------------------------------------------------------------

/// Roles that may create and delete datasets (Dify's editors and dataset operators too).
fn can_edit(role: TenantRole) -> bool {
    !matches!(role, TenantRole::Normal)
}

#[utoipa::path(get, path = "/datasets/api-keys", tag = "console datasets", security(("console_token" = [])),
    responses((status = 200, body = crate::datasets::schemas::ApiKeyList), ConsoleErrors))]
async fn console_list_keys(
    State(state): State<AppState>,
    session: ConsoleSession,
) -> Result<Json<Value>, ApiError> {
    let keys = datasets(&state).list_keys(&session.membership).await?;
    Ok(Json(json!({"data": keys.iter().map(|k| k.json(None)).collect::<Vec<_>>()})))
}

#[utoipa::path(post, path = "/datasets/api-keys", tag = "console datasets", security(("console_token" = [])),
    responses((status = 200, description = "The whole key, shown this once", body = crate::datasets::schemas::ApiKey),
        (status = 400, description = "`max_keys_exceeded`: at most 10 per workspace", body = ErrorBody), ConsoleErrors))]
async fn console_create_key(
    State(state): State<AppState>,
    session: ConsoleSession,
) -> Result<Json<Value>, ApiError> {
    let (key, token) = datasets(&state).create_key(&session.membership).await?;
    Ok(Json(key.json(Some(&token))))
}

#[utoipa::path(delete, path = "/datasets/api-keys/{id}", tag = "console datasets", security(("console_token" = [])),
    params(("id" = Uuid, Path, description = "The key id")),
    responses((status = 204, description = "Deleted; it stops working at once"), (status = 404, body = ErrorBody), ConsoleErrors))]
async fn console_delete_key(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::from(DatasetsError::KeyNotFound))?;
    datasets(&state).delete_key(&session.membership, id, &state.api_keys).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/datasets/{id}/api-keys/{status}", tag = "console datasets", security(("console_token" = [])),
    params(("id" = Uuid, Path, description = "The dataset id"), ("status" = String, Path, description = "`enable` or `disable`")),
    responses((status = 200, body = Success), (status = 404, body = ErrorBody), ConsoleErrors))]
async fn console_api_access(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path((id, status)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let enabled = match status.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return Err(DatasetsError::InvalidParam("status must be enable or disable.".into()).into()),
    };
    datasets(&state).set_api_access(&session.membership, dataset_id(&id)?, enabled).await?;
    Ok(Json(json!({"result": "success"})))
}

#[utoipa::path(get, path = "/datasets", tag = "console datasets", security(("console_token" = [])),
    params(crate::datasets::schemas::PageQuery, ("tag_ids" = Option<Vec<Uuid>>, Query, description = "Only datasets with all these tags")),
    responses((status = 200, body = crate::datasets::schemas::DatasetList), ConsoleErrors))]
async fn console_list(
    State(state): State<AppState>,
    session: ConsoleSession,
    Query(query): Query<ListQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    list(&state, session.membership.tenant.id, &query, raw.as_deref()).await
}

#[utoipa::path(post, path = "/datasets", tag = "console datasets", security(("console_token" = [])), request_body = CreateDataset,
    responses((status = 201, body = crate::datasets::schemas::DatasetDetail),
        (status = 409, description = "`dataset_name_duplicate`", body = ErrorBody), ConsoleErrors))]
async fn console_create(
    State(state): State<AppState>,
    session: ConsoleSession,
    JsonBody(body): JsonBody<CreateDataset>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !can_edit(session.membership.role) {
        return Err(DatasetsError::Forbidden.into());
    }
    let row = datasets(&state).create(session.membership.tenant.id, session.account.id, body).await?;
    Ok((StatusCode::CREATED, Json(dataset_json(&state, &row).await?)))
}

#[utoipa::path(get, path = "/datasets/{id}", tag = "console datasets", security(("console_token" = [])), params(crate::datasets::schemas::DatasetPath),
    responses((status = 200, body = crate::datasets::schemas::DatasetDetail), (status = 404, body = ErrorBody), ConsoleErrors))]
async fn console_get(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = datasets(&state).get(session.membership.tenant.id, dataset_id(&id)?).await?;
    Ok(Json(dataset_json(&state, &row).await?))
}

#[utoipa::path(delete, path = "/datasets/{id}", tag = "console datasets", security(("console_token" = [])), params(crate::datasets::schemas::DatasetPath),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), ConsoleErrors))]
async fn console_delete(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !can_edit(session.membership.role) {
        return Err(DatasetsError::Forbidden.into());
    }
    let row = datasets(&state).get(session.membership.tenant.id, dataset_id(&id)?).await?;
    documents(&state).delete_dataset(&row.dataset, state.jobs.get()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(patch, path = "/datasets/{id}/documents/{document}/processing/{action}", tag = "console datasets", security(("console_token" = [])),
    params(("id" = Uuid, Path, description = "The dataset id"), ("document" = Uuid, Path, description = "The document id"),
        ("action" = String, Path, description = "`pause` or `resume`")),
    responses((status = 200, body = Success), (status = 400, description = "`document_already_finished`, `invalid_action`", body = ErrorBody),
        (status = 404, body = ErrorBody), ConsoleErrors))]
async fn console_processing(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path((id, document, action)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    if !can_edit(session.membership.role) {
        return Err(DatasetsError::Forbidden.into());
    }
    let dataset = datasets(&state).get(session.membership.tenant.id, dataset_id(&id)?).await?.dataset;
    let document = Uuid::parse_str(&document).map_err(|_| ApiError::from(DatasetsError::DocumentNotFound))?;
    let service = documents(&state);
    match action.as_str() {
        "pause" => service.pause(dataset.id, document, session.account.id).await?,
        "resume" => service.resume(dataset.id, document, session.account.id, state.jobs.get()).await?,
        _ => return Err(DatasetsError::InvalidAction.into()),
    }
    Ok(Json(json!({"result": "success"})))
}

/// The console routes (mounted under `/console/api`).
pub fn console_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(console_list, console_create))
        .routes(routes!(console_list_keys, console_create_key))
        .routes(routes!(console_delete_key))
        .routes(routes!(console_get, console_delete))
        .routes(routes!(console_api_access))
        .routes(routes!(console_processing))
}
