//! SQL for datasets and dataset API keys, written once for PostgreSQL and SQLite.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{ApiKey, DATASET_COLUMNS, Dataset, DocumentFigures};
use crate::accounts::repo::RepoError;
use crate::infra::db::{Db, page_clause, placeholders};
use crate::on_db;

const API_KEY_COLUMNS: &str = "id, tenant_id, token_hint, last_used_at, created_at";

pub async fn count_api_keys(db: &Db, tenant_id: Uuid) -> Result<i64, RepoError> {
    let sql = "SELECT count(*) FROM api_tokens WHERE tenant_id = $1 AND type = 'dataset'";
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>(sql).bind(tenant_id).fetch_one(pool).await?))
}

pub async fn insert_api_key(db: &Db, key: &ApiKey, token_hash: &str) -> Result<(), RepoError> {
    let sql = "INSERT INTO api_tokens (id, tenant_id, type, token_hash, token_hint, created_at) \
               VALUES ($1, $2, 'dataset', $3, $4, $5)";
    on_db!(db, pool => sqlx::query(sql)
        .bind(key.id)
        .bind(key.tenant_id)
        .bind(token_hash)
        .bind(&key.token_hint)
        .bind(key.created_at)
        .execute(pool)
        .await
        .map(drop)?);
    Ok(())
}

pub async fn list_api_keys(db: &Db, tenant_id: Uuid) -> Result<Vec<ApiKey>, RepoError> {
    let sql = format!(
        "SELECT {API_KEY_COLUMNS} FROM api_tokens WHERE tenant_id = $1 AND type = 'dataset' ORDER BY created_at"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, ApiKey>(sqlx::AssertSqlSafe(sql)).bind(tenant_id).fetch_all(pool).await?),
    )
}

/// Deletes a key of this tenant; returns whether one was deleted.
pub async fn delete_api_key(db: &Db, tenant_id: Uuid, id: Uuid) -> Result<bool, RepoError> {
    let sql = "DELETE FROM api_tokens WHERE id = $1 AND tenant_id = $2 AND type = 'dataset'";
    let done =
        on_db!(db, pool => sqlx::query(sql).bind(id).bind(tenant_id).execute(pool).await?.rows_affected());
    Ok(done > 0)
}

pub async fn find_api_key_by_hash(db: &Db, token_hash: &str) -> Result<Option<ApiKey>, RepoError> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND type = 'dataset'");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, ApiKey>(sqlx::AssertSqlSafe(sql)).bind(token_hash).fetch_optional(pool).await?),
    )
}

pub async fn touch_api_key(db: &Db, id: Uuid, now: DateTime<Utc>) -> Result<(), RepoError> {
    let sql = "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2";
    on_db!(db, pool => sqlx::query(sql).bind(now).bind(id).execute(pool).await.map(drop)?);
    Ok(())
}

/// The id of the workspace's owner, whom /v1 requests act as.
pub async fn tenant_owner(db: &Db, tenant_id: Uuid) -> Result<Option<Uuid>, RepoError> {
    let sql = "SELECT j.account_id FROM tenant_account_joins j JOIN tenants t ON t.id = j.tenant_id \
               WHERE j.tenant_id = $1 AND j.role = 'owner' AND t.status = 'normal' LIMIT 1";
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, Uuid>(sql).bind(tenant_id).fetch_optional(pool).await?))
}

/// A dataset row with its author's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DatasetRow {
    #[sqlx(flatten)]
    pub dataset: Dataset,
    pub author_name: Option<String>,
}

fn dataset_select() -> String {
    dataset_select_with("")
}

/// [`dataset_select`] with more columns after the author's name (each starting with `, `).
fn dataset_select_with(extra_columns: &str) -> String {
    let columns: Vec<String> = DATASET_COLUMNS.split(',').map(|c| format!("d.{}", c.trim())).collect();
    format!(
        "SELECT {}, a.name AS author_name{extra_columns} FROM datasets d LEFT JOIN accounts a ON a.id = d.created_by",
        columns.join(", ")
    )
}

pub async fn insert_dataset(db: &Db, d: &Dataset) -> Result<(), RepoError> {
    let sql = "INSERT INTO datasets (id, tenant_id, name, description, provider, permission, data_source_type, \
               indexing_technique, retrieval_model, embedding_model, embedding_model_provider, doc_form, enable_api, \
               built_in_field_enabled, created_by, updated_by, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";
    on_db!(db, pool => sqlx::query(sql)
        .bind(d.id)
        .bind(d.tenant_id)
        .bind(&d.name)
        .bind(&d.description)
        .bind(&d.provider)
        .bind(&d.permission)
        .bind(&d.data_source_type)
        .bind(&d.indexing_technique)
        .bind(&d.retrieval_model)
        .bind(&d.embedding_model)
        .bind(&d.embedding_model_provider)
        .bind(&d.doc_form)
        .bind(d.enable_api)
        .bind(d.built_in_field_enabled)
        .bind(d.created_by)
        .bind(d.updated_by)
        .bind(d.created_at)
        .bind(d.updated_at)
        .execute(pool)
        .await
        .map(drop)?);
    Ok(())
}

/// Writes every mutable field back.
pub async fn update_dataset(db: &Db, d: &Dataset) -> Result<(), RepoError> {
    let sql = "UPDATE datasets SET name = $1, description = $2, permission = $3, indexing_technique = $4, \
               retrieval_model = $5, embedding_model = $6, embedding_model_provider = $7, doc_form = $8, \
               enable_api = $9, built_in_field_enabled = $10, updated_by = $11, updated_at = $12 \
               WHERE id = $13 AND tenant_id = $14";
    on_db!(db, pool => sqlx::query(sql)
        .bind(&d.name)
        .bind(&d.description)
        .bind(&d.permission)
        .bind(&d.indexing_technique)
        .bind(&d.retrieval_model)
        .bind(&d.embedding_model)
        .bind(&d.embedding_model_provider)
        .bind(&d.doc_form)
        .bind(d.enable_api)
        .bind(d.built_in_field_enabled)
        .bind(d.updated_by)
        .bind(d.updated_at)
        .bind(d.id)
        .bind(d.tenant_id)
        .execute(pool)
        .await
        .map(drop)?);
    Ok(())
}

/// [`DocumentFigures`] of the dataset `d`, as SELECT columns: the one definition the list
/// and the detail share.
const DOCUMENT_FIGURES: &str = "(SELECT count(*) FROM documents x WHERE x.dataset_id = d.id) AS document_count, \
     (SELECT COALESCE(SUM(x.word_count), 0) FROM documents x WHERE x.dataset_id = d.id) AS word_count, \
     (SELECT count(*) FROM documents x WHERE x.dataset_id = d.id \
     AND x.indexing_status = 'completed' AND x.enabled AND NOT x.archived) AS available_document_count";

/// The document figures of one dataset (zeros for an unknown id).
pub async fn dataset_figures(db: &Db, id: Uuid) -> Result<DocumentFigures, RepoError> {
    let sql = format!("SELECT {DOCUMENT_FIGURES} FROM datasets d WHERE d.id = $1");
    let figures = on_db!(db, pool => sqlx::query_as::<_, DocumentFigures>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?);
    Ok(figures.unwrap_or_default())
}

/// A dataset of this tenant (never another tenant's).
pub async fn find_dataset(db: &Db, tenant_id: Uuid, id: Uuid) -> Result<Option<DatasetRow>, RepoError> {
    let sql = format!("{} WHERE d.id = $1 AND d.tenant_id = $2", dataset_select());
    Ok(on_db!(db, pool => sqlx::query_as::<_, DatasetRow>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(pool)
        .await?))
}

/// A LIKE pattern matching `keyword` anywhere, its wildcards escaped (for `ESCAPE '\\'`).
pub(super) fn like_pattern(keyword: Option<&str>) -> Option<String> {
    keyword.map(|k| format!("%{}%", k.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")))
}

/// A page of the tenant's datasets, newest first, optionally filtered by a name keyword
/// and by tags (any of them; an empty list matches nothing); with the total count of matches.
pub async fn list_datasets(
    db: &Db,
    tenant_id: Uuid,
    keyword: Option<&str>,
    tag_ids: Option<&[Uuid]>,
    page: u32,
    limit: u32,
) -> Result<(Vec<(DatasetRow, DocumentFigures)>, i64), RepoError> {
    /// One row of the page, with its document figures and the count of all matches (the
    /// page, its figures and the total in one statement: the list is the Knowledge API's
    /// hottest read).
    #[derive(sqlx::FromRow)]
    struct Listed {
        #[sqlx(flatten)]
        row: DatasetRow,
        #[sqlx(flatten)]
        figures: DocumentFigures,
        total: i64,
    }
    let pattern = like_pattern(keyword);
    let tags = tag_ids.unwrap_or_default();
    let tag_filter = match tag_ids {
        None => String::new(),
        Some([]) => " AND 1 = 0".to_owned(),
        Some(ids) => format!(
            " AND EXISTS (SELECT 1 FROM tag_bindings b WHERE b.target_id = d.id AND b.tag_id IN ({}))",
            placeholders(3, ids.len())
        ),
    };
    let filter =
        format!("d.tenant_id = $1 AND ($2 IS NULL OR lower(d.name) LIKE lower($2) ESCAPE '\\'){tag_filter}");
    let figures = format!(", {DOCUMENT_FIGURES}, count(*) OVER () AS total");
    let sql = format!(
        "{} WHERE {filter} ORDER BY d.created_at DESC, d.id {}",
        dataset_select_with(&figures),
        page_clause(page, limit)
    );
    let listed: Vec<Listed> = on_db!(db, pool => {
        let mut rows = sqlx::query_as::<_, Listed>(sqlx::AssertSqlSafe(sql)).bind(tenant_id).bind(&pattern);
        for tag in tags {
            rows = rows.bind(tag);
        }
        rows.fetch_all(pool).await?
    });
    let total = match listed.first() {
        Some(first) => first.total,
        // Past the last page the window has no row to carry the total: count apart.
        None if page > 1 => {
            let count = format!("SELECT count(*) FROM datasets d WHERE {filter}");
            on_db!(db, pool => {
                let mut total = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count)).bind(tenant_id).bind(&pattern);
                for tag in tags {
                    total = total.bind(tag);
                }
                total.fetch_one(pool).await?
            })
        }
        None => 0,
    };
    Ok((listed.into_iter().map(|l| (l.row, l.figures)).collect(), total))
}

/// Deletes a dataset of this tenant; returns whether one was deleted.
pub async fn delete_dataset(db: &Db, tenant_id: Uuid, id: Uuid) -> Result<bool, RepoError> {
    let sql = "DELETE FROM datasets WHERE id = $1 AND tenant_id = $2";
    let done =
        on_db!(db, pool => sqlx::query(sql).bind(id).bind(tenant_id).execute(pool).await?.rows_affected());
    Ok(done > 0)
}
