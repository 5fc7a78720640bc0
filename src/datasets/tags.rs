//! Knowledge tags (Dify's §6.2 tag routes): a workspace's tags, their binding to datasets,
//! and the tags a dataset carries.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::http::{ServiceKey, dataset_id, datasets};
use super::service::DatasetsError;
use crate::accounts::repo::RepoError;
use crate::http::AppState;
use crate::http::error::{ApiError, JsonBody};
use crate::http::openapi::ServiceErrors;
use crate::infra::db::Db;
use crate::on_db;

fn invalid(message: impl Into<String>) -> ApiError {
    DatasetsError::InvalidParam(message.into()).into()
}

fn db_error(error: sqlx::Error) -> ApiError {
    match RepoError::from(error) {
        RepoError::Duplicate(_) => invalid("Tag name already exists."),
        other => DatasetsError::from(other).into(),
    }
}

fn tag_missing() -> ApiError {
    ApiError::coded(StatusCode::NOT_FOUND, "not_found", "Tag not found.")
}

/// The tags bound to each of these datasets, as `[{id, name, type}]`, in one query.
pub async fn of_datasets(
    db: &Db,
    datasets: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<Value>>, RepoError> {
    let mut out: std::collections::HashMap<Uuid, Vec<Value>> = std::collections::HashMap::new();
    if datasets.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT b.target_id, t.id, t.name FROM tags t JOIN tag_bindings b ON b.tag_id = t.id \
         WHERE b.target_id IN ({}) ORDER BY t.name",
        crate::infra::db::placeholders(1, datasets.len())
    );
    let rows: Vec<(Uuid, Uuid, String)> = on_db!(db, pool => {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in datasets {
            query = query.bind(*id);
        }
        query.fetch_all(pool).await?
    });
    for (dataset, id, name) in rows {
        out.entry(dataset).or_default().push(json!({"id": id, "name": name, "type": "knowledge"}));
    }
    Ok(out)
}

fn check_name(name: Option<&str>) -> Result<String, ApiError> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() || name.chars().count() > 50 {
        return Err(invalid("Name must be between 1 to 50 characters."));
    }
    Ok(name.to_owned())
}

async fn tag_json(db: &Db, tenant: Uuid, id: Uuid) -> Result<Value, ApiError> {
    let sql = "SELECT t.id, t.name, (SELECT count(*) FROM tag_bindings b WHERE b.tag_id = t.id) \
               FROM tags t WHERE t.id = $1 AND t.tenant_id = $2";
    let row: Option<(Uuid, String, i64)> =
        on_db!(db, pool => sqlx::query_as(sql).bind(id).bind(tenant).fetch_optional(pool).await)
            .map_err(db_error)?;
    let (id, name, count) = row.ok_or_else(tag_missing)?;
    Ok(json!({"id": id, "name": name, "type": "knowledge", "binding_count": count.to_string()}))
}

#[utoipa::path(get, path = "/datasets/tags", tag = "tags", security(("dataset_api_key" = [])),
    responses((status = 200, body = Vec<crate::datasets::schemas::Tag>), ServiceErrors))]
async fn list(State(state): State<AppState>, key: ServiceKey) -> Result<Json<Value>, ApiError> {
    let sql = "SELECT t.id, t.name, (SELECT count(*) FROM tag_bindings b WHERE b.tag_id = t.id) \
               FROM tags t WHERE t.tenant_id = $1 AND t.type = 'knowledge' ORDER BY t.created_at";
    let rows: Vec<(Uuid, String, i64)> =
        on_db!(&state.db, pool => sqlx::query_as(sql).bind(key.0.tenant_id).fetch_all(pool).await)
            .map_err(db_error)?;
    let tags: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, count)| json!({"id": id, "name": name, "type": "knowledge", "binding_count": count.to_string()}))
        .collect();
    Ok(Json(Value::Array(tags)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct TagArgs {
    name: Option<String>,
    tag_id: Option<String>,
}

fn tag_id(raw: Option<&str>) -> Result<Uuid, ApiError> {
    let raw = raw.ok_or_else(|| invalid("tag_id is required."))?;
    Uuid::parse_str(raw).map_err(|_| tag_missing())
}

#[utoipa::path(post, path = "/datasets/tags", tag = "tags", security(("dataset_api_key" = [])), request_body = TagArgs,
    responses((status = 200, body = crate::datasets::schemas::Tag), ServiceErrors))]
async fn create(
    State(state): State<AppState>,
    key: ServiceKey,
    JsonBody(body): JsonBody<TagArgs>,
) -> Result<Json<Value>, ApiError> {
    let name = check_name(body.name.as_deref())?;
    let id = Uuid::new_v4();
    let sql = "INSERT INTO tags (id, tenant_id, type, name, created_by, created_at) VALUES ($1, $2, 'knowledge', $3, $4, $5)";
    on_db!(&state.db, pool => sqlx::query(sql)
        .bind(id).bind(key.0.tenant_id).bind(&name).bind(key.0.owner_id).bind(Utc::now())
        .execute(pool).await.map(drop))
    .map_err(db_error)?;
    Ok(Json(tag_json(&state.db, key.0.tenant_id, id).await?))
}

#[utoipa::path(patch, path = "/datasets/tags", tag = "tags", security(("dataset_api_key" = [])), request_body = TagArgs,
    responses((status = 200, body = crate::datasets::schemas::Tag), ServiceErrors))]
async fn rename(
    State(state): State<AppState>,
    key: ServiceKey,
    JsonBody(body): JsonBody<TagArgs>,
) -> Result<Json<Value>, ApiError> {
    let name = check_name(body.name.as_deref())?;
    let id = tag_id(body.tag_id.as_deref())?;
    let sql = "UPDATE tags SET name = $1 WHERE id = $2 AND tenant_id = $3";
    let done = on_db!(&state.db, pool => sqlx::query(sql).bind(&name).bind(id).bind(key.0.tenant_id)
        .execute(pool).await.map(|r| r.rows_affected()))
    .map_err(db_error)?;
    if done == 0 {
        return Err(tag_missing());
    }
    Ok(Json(tag_json(&state.db, key.0.tenant_id, id).await?))
}

#[utoipa::path(delete, path = "/datasets/tags", tag = "tags", security(("dataset_api_key" = [])), request_body = TagArgs,
    responses((status = 204, description = "Deleted, with its bindings"), ServiceErrors))]
async fn delete(
    State(state): State<AppState>,
    key: ServiceKey,
    JsonBody(body): JsonBody<TagArgs>,
) -> Result<StatusCode, ApiError> {
    let id = tag_id(body.tag_id.as_deref())?;
    let sql = "DELETE FROM tags WHERE id = $1 AND tenant_id = $2";
    let done = on_db!(&state.db, pool => sqlx::query(sql).bind(id).bind(key.0.tenant_id)
        .execute(pool).await.map(|r| r.rows_affected()))
    .map_err(db_error)?;
    if done == 0 {
        return Err(tag_missing());
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct BindingArgs {
    tag_ids: Option<Vec<String>>,
    /// The legacy single-tag form of unbinding.
    tag_id: Option<String>,
    target_id: Option<String>,
}

/// The tags (this workspace's) and the dataset (this key may use) a binding call names.
async fn binding_args(
    state: &AppState,
    key: &ServiceKey,
    body: BindingArgs,
) -> Result<(Vec<Uuid>, Uuid), ApiError> {
    let target = body.target_id.ok_or_else(|| invalid("target_id is required."))?;
    let dataset = datasets(state).get_for_api(key.0.tenant_id, dataset_id(&target)?).await?.dataset;
    let raw: Vec<String> = body.tag_ids.unwrap_or_default().into_iter().chain(body.tag_id).collect();
    if raw.is_empty() {
        return Err(invalid("tag_ids is required."));
    }
    let mut ids = Vec::with_capacity(raw.len());
    for raw in raw {
        let id = Uuid::parse_str(&raw).map_err(|_| tag_missing())?;
        tag_json(&state.db, key.0.tenant_id, id).await?;
        ids.push(id);
    }
    Ok((ids, dataset.id))
}

#[utoipa::path(post, path = "/datasets/tags/binding", tag = "tags", security(("dataset_api_key" = [])), request_body = BindingArgs,
    responses((status = 204, description = "Bound"), ServiceErrors))]
async fn bind(
    State(state): State<AppState>,
    key: ServiceKey,
    JsonBody(body): JsonBody<BindingArgs>,
) -> Result<StatusCode, ApiError> {
    let (tags, target) = binding_args(&state, &key, body).await?;
    for tag in tags {
        let exists = "SELECT count(*) FROM tag_bindings WHERE tag_id = $1 AND target_id = $2";
        let count: i64 = on_db!(&state.db, pool => sqlx::query_scalar(exists).bind(tag).bind(target).fetch_one(pool).await)
            .map_err(db_error)?;
        if count > 0 {
            continue;
        }
        let sql = "INSERT INTO tag_bindings (tag_id, target_id, tenant_id, created_by, created_at) VALUES ($1, $2, $3, $4, $5)";
        on_db!(&state.db, pool => sqlx::query(sql)
            .bind(tag).bind(target).bind(key.0.tenant_id).bind(key.0.owner_id).bind(Utc::now())
            .execute(pool).await.map(drop))
        .map_err(db_error)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/datasets/tags/unbinding", tag = "tags", security(("dataset_api_key" = [])), request_body = BindingArgs,
    responses((status = 204, description = "Unbound"), ServiceErrors))]
async fn unbind(
    State(state): State<AppState>,
    key: ServiceKey,
    JsonBody(body): JsonBody<BindingArgs>,
) -> Result<StatusCode, ApiError> {
    let (tags, target) = binding_args(&state, &key, body).await?;
    for tag in tags {
        let sql = "DELETE FROM tag_bindings WHERE tag_id = $1 AND target_id = $2";
        on_db!(&state.db, pool => sqlx::query(sql).bind(tag).bind(target).execute(pool).await.map(drop))
            .map_err(db_error)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/datasets/{id}/tags", tag = "tags", security(("dataset_api_key" = [])), params(crate::datasets::schemas::DatasetPath),
    responses((status = 200, body = crate::datasets::schemas::DatasetTags), ServiceErrors))]
async fn dataset_tags(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let dataset = datasets(&state).get_for_api(key.0.tenant_id, dataset_id(&id)?).await?.dataset;
    let tags = of_datasets(&state.db, &[dataset.id])
        .await
        .map_err(DatasetsError::from)?
        .remove(&dataset.id)
        .unwrap_or_default();
    let data: Vec<Value> = tags.iter().map(|t| json!({"id": t["id"], "name": t["name"]})).collect();
    let total = data.len();
    Ok(Json(json!({"data": data, "total": total})))
}

/// The tag routes (mounted under `/v1`).
pub fn service_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create, rename, delete))
        .routes(routes!(bind))
        .routes(routes!(unbind))
        .routes(routes!(dataset_tags))
}
