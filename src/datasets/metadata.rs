//! Dataset metadata fields and document metadata values (Dify's §6.7): define, list, rename
//! and delete fields; set values on documents; switch the built-in fields flag.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::http::{ServiceKey, dataset_id, datasets};
use super::model::Dataset;
use super::repo as dataset_repo;
use super::service::DatasetsError;
use crate::accounts::repo::RepoError;
use crate::http::AppState;
use crate::http::error::{ApiError, JsonBody};
use crate::http::openapi::{ServiceErrors, Success};
use crate::infra::db::Db;
use crate::on_db;

/// Dify's built-in document fields, shown when a dataset enables them.
const BUILT_IN: [(&str, &str); 5] = [
    ("document_name", "string"),
    ("uploader", "string"),
    ("upload_date", "time"),
    ("last_update_date", "time"),
    ("source", "string"),
];

/// A metadata field of a dataset.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Field {
    pub id: Uuid,
    pub dataset_id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    DatasetsError::InvalidParam(message.into()).into()
}

fn repo_error(error: RepoError) -> ApiError {
    DatasetsError::from(error).into()
}

async fn fields(db: &Db, dataset: Uuid) -> Result<Vec<Field>, RepoError> {
    let sql = "SELECT id, dataset_id, type, name, created_at FROM dataset_metadatas WHERE dataset_id = $1 ORDER BY created_at";
    Ok(on_db!(db, pool => sqlx::query_as::<_, Field>(sql).bind(dataset).fetch_all(pool).await?))
}

async fn field(db: &Db, dataset: Uuid, raw: &str) -> Result<Field, ApiError> {
    let missing = || ApiError::coded(StatusCode::NOT_FOUND, "not_found", "Metadata not found.");
    let id = Uuid::parse_str(raw).map_err(|_| missing())?;
    let sql = "SELECT id, dataset_id, type, name, created_at FROM dataset_metadatas WHERE id = $1 AND dataset_id = $2";
    on_db!(db, pool => sqlx::query_as::<_, Field>(sql).bind(id).bind(dataset).fetch_optional(pool).await)
        .map_err(|e| repo_error(e.into()))?
        .ok_or_else(missing)
}

/// Every document of a dataset with its metadata values (id, raw JSON).
async fn document_values(db: &Db, dataset: Uuid) -> Result<Vec<(Uuid, Option<String>)>, RepoError> {
    let sql = "SELECT id, doc_metadata FROM documents WHERE dataset_id = $1";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, (Uuid, Option<String>)>(sql).bind(dataset).fetch_all(pool).await?),
    )
}

async fn set_document_values(db: &Db, document: Uuid, values: &Value) -> Result<(), RepoError> {
    let sql = "UPDATE documents SET doc_metadata = $1 WHERE id = $2";
    on_db!(db, pool => sqlx::query(sql).bind(values.to_string()).bind(document).execute(pool).await.map(drop)?);
    Ok(())
}

fn values_of(raw: Option<&str>) -> Vec<Value> {
    raw.and_then(|r| serde_json::from_str::<Vec<Value>>(r).ok()).unwrap_or_default()
}

/// Rewrites every document's values of one field (rename, or drop with `None`).
async fn rewrite_values(
    db: &Db,
    dataset: Uuid,
    field_id: Uuid,
    rename: Option<&str>,
) -> Result<(), RepoError> {
    let id = json!(field_id);
    for (document, raw) in document_values(db, dataset).await? {
        let mut values = values_of(raw.as_deref());
        if !values.iter().any(|v| v["id"] == id) {
            continue;
        }
        match rename {
            Some(name) => values.iter_mut().filter(|v| v["id"] == id).for_each(|v| v["name"] = json!(name)),
            None => values.retain(|v| v["id"] != id),
        }
        set_document_values(db, document, &Value::Array(values)).await?;
    }
    Ok(())
}

async fn api_dataset(state: &AppState, key: &ServiceKey, raw: &str) -> Result<Dataset, ApiError> {
    Ok(datasets(state).get_for_api(key.0.tenant_id, dataset_id(raw)?).await?.dataset)
}

fn check_name(name: Option<&str>, taken: &[Field], except: Option<Uuid>) -> Result<String, ApiError> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(invalid("Metadata name is required."));
    }
    if name.chars().count() > 255 {
        return Err(invalid("Metadata name cannot exceed 255 characters."));
    }
    if BUILT_IN.iter().any(|(built_in, _)| *built_in == name) {
        return Err(invalid("Metadata name already exists in Built-in fields."));
    }
    if taken.iter().any(|f| f.name == name && Some(f.id) != except) {
        return Err(invalid("Metadata name already exists."));
    }
    Ok(name.to_owned())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct NewField {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
}

#[utoipa::path(post, path = "/datasets/{id}/metadata", tag = "metadata", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath), request_body = NewField,
    responses((status = 201, body = crate::datasets::schemas::MetadataField), ServiceErrors))]
async fn create(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewField>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let kind = body.kind.unwrap_or_default();
    if !matches!(kind.as_str(), "string" | "number" | "time") {
        return Err(invalid("Metadata type must be string, number or time."));
    }
    let taken = fields(&state.db, dataset.id).await.map_err(repo_error)?;
    let name = check_name(body.name.as_deref(), &taken, None)?;
    let (field, now) = (Uuid::new_v4(), Utc::now());
    let sql = "INSERT INTO dataset_metadatas (id, tenant_id, dataset_id, type, name, created_by, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";
    on_db!(&state.db, pool => sqlx::query(sql)
        .bind(field).bind(dataset.tenant_id).bind(dataset.id).bind(&kind).bind(&name).bind(key.0.owner_id).bind(now)
        .execute(pool).await.map(drop))
    .map_err(|e| repo_error(e.into()))?;
    Ok((StatusCode::CREATED, Json(json!({"id": field, "type": kind, "name": name}))))
}

#[utoipa::path(get, path = "/datasets/{id}/metadata", tag = "metadata", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath),
    responses((status = 200, body = crate::datasets::schemas::MetadataList), ServiceErrors))]
async fn list(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let defined = fields(&state.db, dataset.id).await.map_err(repo_error)?;
    let documents = document_values(&state.db, dataset.id).await.map_err(repo_error)?;
    let listed: Vec<Value> = defined
        .iter()
        .map(|f| {
            let id = json!(f.id);
            let count = documents
                .iter()
                .filter(|(_, raw)| values_of(raw.as_deref()).iter().any(|v| v["id"] == id))
                .count();
            json!({"id": f.id, "type": f.kind, "name": f.name, "count": count})
        })
        .collect();
    Ok(Json(json!({"doc_metadata": listed, "built_in_field_enabled": dataset.built_in_field_enabled})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct Rename {
    name: Option<String>,
}

/// Renames a field (documents' values follow).
#[utoipa::path(patch, path = "/datasets/{id}/metadata/{field}", tag = "metadata", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::FieldPath), request_body = Rename,
    responses((status = 200, body = crate::datasets::schemas::MetadataField), ServiceErrors))]
async fn rename(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, field_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Rename>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let current = field(&state.db, dataset.id, &field_id).await?;
    let taken = fields(&state.db, dataset.id).await.map_err(repo_error)?;
    let name = check_name(body.name.as_deref(), &taken, Some(current.id))?;
    let sql = "UPDATE dataset_metadatas SET name = $1, updated_at = $2 WHERE id = $3";
    on_db!(&state.db, pool => sqlx::query(sql).bind(&name).bind(Utc::now()).bind(current.id).execute(pool).await.map(drop))
        .map_err(|e| repo_error(e.into()))?;
    rewrite_values(&state.db, dataset.id, current.id, Some(&name)).await.map_err(repo_error)?;
    Ok(Json(json!({"id": current.id, "type": current.kind, "name": name})))
}

/// Deletes a field and every document's value for it.
#[utoipa::path(delete, path = "/datasets/{id}/metadata/{field}", tag = "metadata", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::FieldPath),
    responses((status = 204, description = "Deleted"), ServiceErrors))]
async fn remove(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, field_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let current = field(&state.db, dataset.id, &field_id).await?;
    rewrite_values(&state.db, dataset.id, current.id, None).await.map_err(repo_error)?;
    let sql = "DELETE FROM dataset_metadatas WHERE id = $1";
    on_db!(&state.db, pool => sqlx::query(sql).bind(current.id).execute(pool).await.map(drop))
        .map_err(|e| repo_error(e.into()))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/datasets/{id}/metadata/built-in", tag = "metadata", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath),
    responses((status = 200, body = crate::datasets::schemas::BuiltInFields), ServiceErrors))]
async fn built_in(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api_dataset(&state, &key, &id).await?;
    let fields: Vec<Value> =
        BUILT_IN.iter().map(|(name, kind)| json!({"name": name, "type": kind})).collect();
    Ok(Json(json!({"fields": fields})))
}

#[utoipa::path(post, path = "/datasets/{id}/metadata/built-in/{action}", tag = "metadata", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath, ("action" = String, Path, description = "`enable` or `disable`")),
    responses((status = 200, body = Success), ServiceErrors))]
async fn switch_built_in(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mut dataset = api_dataset(&state, &key, &id).await?;
    dataset.built_in_field_enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return Err(DatasetsError::InvalidAction.into()),
    };
    dataset.updated_at = Utc::now();
    dataset_repo::update_dataset(&state.db, &dataset).await.map_err(repo_error)?;
    for (document, _) in document_values(&state.db, dataset.id).await.map_err(repo_error)? {
        refresh_built_in(&state.db, document, dataset.built_in_field_enabled).await.map_err(repo_error)?;
    }
    Ok(Json(json!({"result": "success"})))
}

/// The `id` Dify gives built-in values in a document's `doc_metadata`.
const BUILT_IN_ID: &str = "built-in";

/// Rewrites a document's built-in values: its name, uploader, upload and update times and
/// source when `enabled`, none otherwise (the dataset's switch). Other values stay.
pub async fn refresh_built_in(db: &Db, document: Uuid, enabled: bool) -> Result<(), RepoError> {
    let sql = "SELECT d.name, a.name, d.created_at, d.updated_at, d.data_source_type, d.doc_metadata \
               FROM documents d LEFT JOIN accounts a ON a.id = d.created_by WHERE d.id = $1";
    type Row = (String, Option<String>, DateTime<Utc>, DateTime<Utc>, String, Option<String>);
    let row: Option<Row> = on_db!(db, pool => sqlx::query_as(sql).bind(document).fetch_optional(pool).await?);
    let Some((name, uploader, created, updated, source, raw)) = row else {
        return Ok(());
    };
    let mut values = values_of(raw.as_deref());
    values.retain(|v| v["id"] != BUILT_IN_ID);
    if enabled {
        // Dify's MetadataDataSource names upload_file documents `file_upload`.
        let source = if source == "upload_file" { "file_upload".to_owned() } else { source };
        let built_in = [
            ("document_name", json!(name)),
            ("uploader", json!(uploader.unwrap_or_default())),
            ("upload_date", json!(created.timestamp())),
            ("last_update_date", json!(updated.timestamp())),
            ("source", json!(source)),
        ];
        for ((field, value), (_, kind)) in built_in.into_iter().zip(BUILT_IN) {
            values.push(json!({"id": BUILT_IN_ID, "name": field, "type": kind, "value": value}));
        }
    }
    set_document_values(db, document, &Value::Array(values)).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct Operation {
    document_id: String,
    metadata_list: Vec<ValueArgs>,
    #[serde(default)]
    partial_update: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct ValueArgs {
    id: String,
    name: Option<String>,
    value: Value,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct Operations {
    operation_data: Vec<Operation>,
}

/// Sets documents' metadata values: the given list replaces the document's values (the
/// built-in ones stay), or with `partial_update` is merged into them.
#[utoipa::path(post, path = "/datasets/{id}/documents/metadata", tag = "metadata", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath), request_body = Operations,
    responses((status = 200, body = Success), ServiceErrors))]
async fn update_documents(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Operations>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let defined = fields(&state.db, dataset.id).await.map_err(repo_error)?;
    let service = super::http::documents(&state);
    for operation in body.operation_data {
        let document_id = Uuid::parse_str(&operation.document_id)
            .map_err(|_| ApiError::from(DatasetsError::DocumentNotFound))?;
        let document = service.get(dataset.id, document_id).await?;
        let mut values = values_of(document.doc_metadata.as_deref());
        if !operation.partial_update {
            values.retain(|v| v["id"] == BUILT_IN_ID);
        }
        for item in operation.metadata_list {
            let field = defined
                .iter()
                .find(|f| f.id.to_string() == item.id)
                .ok_or_else(|| ApiError::coded(StatusCode::NOT_FOUND, "not_found", "Metadata not found."))?;
            if let Some(name) = &item.name
                && name != &field.name
            {
                return Err(invalid(format!(
                    "Metadata {} is named {:?}, not {name:?}.",
                    field.id, field.name
                )));
            }
            let value = match (field.kind.as_str(), &item.value) {
                (_, Value::Null) => Value::Null,
                ("number" | "time", Value::Number(_)) => item.value.clone(),
                ("number" | "time", Value::String(text)) => {
                    serde_json::from_str::<serde_json::Number>(text.trim())
                        .map(Value::Number)
                        .map_err(|_| invalid(format!("Metadata {} expects a number.", field.name)))?
                }
                ("string", Value::String(_)) => item.value.clone(),
                ("string", other) => Value::String(other.to_string()),
                _ => return Err(invalid(format!("Metadata {} expects a number.", field.name))),
            };
            let id = json!(field.id);
            values.retain(|v| v["id"] != id);
            values.push(json!({"id": field.id, "name": field.name, "type": field.kind, "value": value}));
        }
        set_document_values(&state.db, document.id, &Value::Array(values)).await.map_err(repo_error)?;
    }
    Ok(Json(json!({"result": "success"})))
}

/// The metadata routes (mounted under `/v1`).
pub fn service_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(built_in))
        .routes(routes!(switch_built_in))
        .routes(routes!(rename, remove))
        .routes(routes!(update_documents))
}
