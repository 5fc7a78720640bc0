//! SQL for documents, their files and process rules, segments and the keyword index.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::documents::{DOCUMENT_COLUMNS, Document, SEGMENT_COLUMNS, Segment};
use crate::accounts::repo::RepoError;
use crate::infra::db::{Db, placeholders};
use crate::on_db;

/// A stored upload (`upload_files/{tenant}/{uuid}.{ext}`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UploadFile {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub storage_key: String,
    pub name: String,
    pub size: i64,
    pub extension: String,
    pub mime_type: Option<String>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

/// A stored process rule.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProcessRule {
    pub id: Uuid,
    pub mode: String,
    pub rules: Option<String>,
}

/// A segment to write, with its keywords.
pub struct NewSegment {
    pub content: String,
    pub keywords: Vec<String>,
    pub search_text: String,
    pub tokens: i32,
    pub hash: String,
    /// Child chunks (hierarchical_model documents), in order.
    pub children: Vec<String>,
}

pub async fn insert_upload_file(db: &Db, f: &UploadFile) -> Result<(), RepoError> {
    let sql = "INSERT INTO upload_files (id, tenant_id, storage_key, name, size, extension, mime_type, created_by, \
               created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    on_db!(db, pool => sqlx::query(sql)
        .bind(f.id).bind(f.tenant_id).bind(&f.storage_key).bind(&f.name).bind(f.size).bind(&f.extension)
        .bind(&f.mime_type).bind(f.created_by).bind(f.created_at)
        .execute(pool).await.map(drop)?);
    Ok(())
}

pub async fn find_upload_file(db: &Db, id: Uuid) -> Result<Option<UploadFile>, RepoError> {
    let sql = "SELECT id, tenant_id, storage_key, name, size, extension, mime_type, created_by, created_at \
               FROM upload_files WHERE id = $1";
    Ok(on_db!(db, pool => sqlx::query_as::<_, UploadFile>(sql).bind(id).fetch_optional(pool).await?))
}

pub async fn delete_upload_file(db: &Db, id: Uuid) -> Result<(), RepoError> {
    let sql = "DELETE FROM upload_files WHERE id = $1";
    on_db!(db, pool => sqlx::query(sql).bind(id).execute(pool).await.map(drop)?);
    Ok(())
}

/// The upload records of a dataset's documents.
pub async fn dataset_upload_files(db: &Db, dataset_id: Uuid) -> Result<Vec<Uuid>, RepoError> {
    let sql = "SELECT upload_file_id FROM documents WHERE dataset_id = $1 AND upload_file_id IS NOT NULL";
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, Uuid>(sql).bind(dataset_id).fetch_all(pool).await?))
}

pub async fn insert_process_rule(
    db: &Db,
    dataset_id: Uuid,
    mode: &str,
    rules: Option<&str>,
    created_by: Uuid,
    now: DateTime<Utc>,
) -> Result<Uuid, RepoError> {
    let id = Uuid::new_v4();
    let sql = "INSERT INTO dataset_process_rules (id, dataset_id, mode, rules, created_by, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    on_db!(db, pool => sqlx::query(sql)
        .bind(id).bind(dataset_id).bind(mode).bind(rules).bind(created_by).bind(now)
        .execute(pool).await.map(drop)?);
    Ok(id)
}

/// The dataset's newest process rule, which later documents inherit.
pub async fn latest_process_rule(db: &Db, dataset_id: Uuid) -> Result<Option<ProcessRule>, RepoError> {
    let sql = "SELECT id, mode, rules FROM dataset_process_rules WHERE dataset_id = $1 ORDER BY created_at DESC LIMIT 1";
    Ok(on_db!(db, pool => sqlx::query_as::<_, ProcessRule>(sql).bind(dataset_id).fetch_optional(pool).await?))
}

pub async fn find_process_rule(db: &Db, id: Uuid) -> Result<Option<ProcessRule>, RepoError> {
    let sql = "SELECT id, mode, rules FROM dataset_process_rules WHERE id = $1";
    Ok(on_db!(db, pool => sqlx::query_as::<_, ProcessRule>(sql).bind(id).fetch_optional(pool).await?))
}

pub async fn next_position(db: &Db, dataset_id: Uuid) -> Result<i32, RepoError> {
    let sql = "SELECT COALESCE(MAX(position), 0) + 1 FROM documents WHERE dataset_id = $1";
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i32>(sql).bind(dataset_id).fetch_one(pool).await?))
}

pub async fn insert_document(db: &Db, d: &Document) -> Result<(), RepoError> {
    let sql = "INSERT INTO documents (id, tenant_id, dataset_id, position, data_source_type, data_source_info, \
               dataset_process_rule_id, batch, name, created_from, created_by, created_at, updated_at, upload_file_id, \
               indexing_status, doc_form, doc_language) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";
    on_db!(db, pool => sqlx::query(sql)
        .bind(d.id).bind(d.tenant_id).bind(d.dataset_id).bind(d.position).bind(&d.data_source_type)
        .bind(&d.data_source_info).bind(d.dataset_process_rule_id).bind(&d.batch).bind(&d.name)
        .bind(&d.created_from).bind(d.created_by).bind(d.created_at).bind(d.updated_at).bind(d.upload_file_id)
        .bind(&d.indexing_status).bind(&d.doc_form).bind(&d.doc_language)
        .execute(pool).await.map(drop)?);
    Ok(())
}

/// A document of this dataset.
pub async fn find_document(db: &Db, dataset_id: Uuid, id: Uuid) -> Result<Option<Document>, RepoError> {
    let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1 AND dataset_id = $2");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Document>(sqlx::AssertSqlSafe(sql))
        .bind(id).bind(dataset_id).fetch_optional(pool).await?))
}

pub async fn list_documents(
    db: &Db,
    dataset_id: Uuid,
    keyword: Option<&str>,
    page: u32,
    limit: u32,
) -> Result<(Vec<Document>, i64), RepoError> {
    let pattern = super::repo::like_pattern(keyword);
    let filter = "dataset_id = $1 AND ($2 IS NULL OR lower(name) LIKE lower($2) ESCAPE '\\')";
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE {filter} ORDER BY position DESC {}",
        crate::infra::db::page_clause(page, limit)
    );
    let count = format!("SELECT count(*) FROM documents WHERE {filter}");
    on_db!(db, pool => {
        let rows = sqlx::query_as::<_, Document>(sqlx::AssertSqlSafe(sql))
            .bind(dataset_id).bind(&pattern).fetch_all(pool).await?;
        let total = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count))
            .bind(dataset_id).bind(&pattern).fetch_one(pool).await?;
        Ok((rows, total))
    })
}

pub async fn documents_in_batch(db: &Db, dataset_id: Uuid, batch: &str) -> Result<Vec<Document>, RepoError> {
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE dataset_id = $1 AND batch = $2 ORDER BY position"
    );
    Ok(on_db!(db, pool => sqlx::query_as::<_, Document>(sqlx::AssertSqlSafe(sql))
        .bind(dataset_id).bind(batch).fetch_all(pool).await?))
}

/// A document switch Dify's batch status actions and pause/resume flip.
#[derive(Debug, Clone, Copy)]
pub enum Switch {
    Enable,
    Disable,
    Archive,
    Unarchive,
    Pause,
    Resume,
}

/// Flips one switch on a document of this dataset; returns whether it exists.
pub async fn set_switch(
    db: &Db,
    dataset_id: Uuid,
    id: Uuid,
    switch: Switch,
    by: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, RepoError> {
    let sql = match switch {
        Switch::Enable => {
            "UPDATE documents SET enabled = TRUE, disabled_at = NULL, disabled_by = NULL, updated_at = $1 \
                           WHERE id = $2 AND dataset_id = $3"
        }
        Switch::Disable => {
            "UPDATE documents SET enabled = FALSE, disabled_at = $1, disabled_by = $4, updated_at = $1 \
                            WHERE id = $2 AND dataset_id = $3"
        }
        Switch::Archive => {
            "UPDATE documents SET archived = TRUE, archived_at = $1, updated_at = $1 \
                            WHERE id = $2 AND dataset_id = $3"
        }
        Switch::Unarchive => {
            "UPDATE documents SET archived = FALSE, archived_at = NULL, updated_at = $1 \
                              WHERE id = $2 AND dataset_id = $3"
        }
        Switch::Pause => {
            "UPDATE documents SET is_paused = TRUE, paused_at = $1, updated_at = $1 \
                          WHERE id = $2 AND dataset_id = $3"
        }
        Switch::Resume => {
            "UPDATE documents SET is_paused = FALSE, paused_at = NULL, updated_at = $1 \
                           WHERE id = $2 AND dataset_id = $3"
        }
    };
    let done = on_db!(db, pool => {
        let query = sqlx::query(sql).bind(now).bind(id).bind(dataset_id);
        let query = if matches!(switch, Switch::Disable) { query.bind(by) } else { query };
        query.execute(pool).await?.rows_affected()
    });
    Ok(done > 0)
}

/// What an update changes on a document before it is indexed again.
pub struct Reindex<'a> {
    pub name: &'a str,
    pub upload_file_id: Option<Uuid>,
    pub process_rule_id: Option<Uuid>,
    pub batch: &'a str,
    /// False for a rename alone: the document keeps its state.
    pub reset: bool,
}

/// Applies an update; with `reset`, the document waits to be indexed again.
pub async fn update_document(
    db: &Db,
    document: &Document,
    change: &Reindex<'_>,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    let info = change.upload_file_id.map(|id| serde_json::json!({"upload_file_id": id}).to_string());
    let sql = if change.reset {
        "UPDATE documents SET name = $1, upload_file_id = COALESCE($2, upload_file_id), \
         data_source_info = COALESCE($3, data_source_info), dataset_process_rule_id = COALESCE($4, dataset_process_rule_id), \
         batch = $5, updated_at = $6, indexing_status = 'waiting', processing_started_at = NULL, \
         parsing_completed_at = NULL, cleaning_completed_at = NULL, splitting_completed_at = NULL, completed_at = NULL, \
         indexing_latency = NULL, is_paused = FALSE, paused_at = NULL, error = NULL, stopped_at = NULL WHERE id = $7"
    } else {
        "UPDATE documents SET name = $1, upload_file_id = COALESCE($2, upload_file_id), \
         data_source_info = COALESCE($3, data_source_info), dataset_process_rule_id = COALESCE($4, dataset_process_rule_id), \
         batch = $5, updated_at = $6 WHERE id = $7"
    };
    on_db!(db, pool => sqlx::query(sql)
        .bind(change.name).bind(change.upload_file_id).bind(info).bind(change.process_rule_id)
        .bind(change.batch).bind(now).bind(document.id)
        .execute(pool).await.map(drop)?);
    Ok(())
}

pub async fn delete_document(db: &Db, dataset_id: Uuid, id: Uuid) -> Result<bool, RepoError> {
    let sql = "DELETE FROM documents WHERE id = $1 AND dataset_id = $2";
    Ok(on_db!(db, pool => sqlx::query(sql).bind(id).bind(dataset_id).execute(pool).await?.rows_affected())
        > 0)
}

/// The indexing steps, each with the column that records when it started or finished.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Parsing,
    Cleaning,
    Splitting,
    Indexing,
}

/// Moves a document to `step`, stamping the previous step's completion (as Dify does).
pub async fn advance(db: &Db, id: Uuid, step: Step, now: DateTime<Utc>) -> Result<(), RepoError> {
    let sql = match step {
        Step::Parsing => {
            "UPDATE documents SET indexing_status = 'parsing', processing_started_at = $1, error = NULL, \
             stopped_at = NULL, updated_at = $1 WHERE id = $2"
        }
        Step::Cleaning => {
            "UPDATE documents SET indexing_status = 'cleaning', parsing_completed_at = $1, updated_at = $1 WHERE id = $2"
        }
        Step::Splitting => {
            "UPDATE documents SET indexing_status = 'splitting', cleaning_completed_at = $1, updated_at = $1 WHERE id = $2"
        }
        Step::Indexing => {
            "UPDATE documents SET indexing_status = 'indexing', splitting_completed_at = $1, updated_at = $1 WHERE id = $2"
        }
    };
    on_db!(db, pool => sqlx::query(sql).bind(now).bind(id).execute(pool).await.map(drop)?);
    Ok(())
}

/// Marks indexing failed with the reason.
pub async fn fail(db: &Db, id: Uuid, error: &str, now: DateTime<Utc>) -> Result<(), RepoError> {
    let sql = "UPDATE documents SET indexing_status = 'error', error = $1, stopped_at = $2, updated_at = $2 WHERE id = $3";
    on_db!(db, pool => sqlx::query(sql).bind(error).bind(now).bind(id).execute(pool).await.map(drop)?);
    Ok(())
}

/// Replaces a document's segments and keywords and marks it completed, in one transaction:
/// a re-delivered job rewrites the same positions and can never leave two copies.
pub async fn replace_segments(
    db: &Db,
    document: &Document,
    segments: &[NewSegment],
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    let word_count: i64 = segments.iter().map(|s| s.content.chars().count() as i64).sum();
    let tokens: i64 = segments.iter().map(|s| i64::from(s.tokens)).sum();
    let latency = document.processing_started_at.map(|t| (now - t).num_milliseconds() as f64 / 1000.0);
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM document_segments WHERE document_id = $1").bind(document.id).execute(&mut *tx).await?;
        // Multi-row inserts: 500 segments of 17 values stay under SQLite's and PostgreSQL's
        // bind limits.
        let rows: Vec<(Uuid, i32, &NewSegment)> =
            segments.iter().enumerate().map(|(index, s)| (Uuid::new_v4(), index as i32 + 1, s)).collect();
        for chunk in rows.chunks(500) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO document_segments (id, tenant_id, dataset_id, document_id, position, content, word_count, \
                 tokens, keywords, index_node_id, index_node_hash, created_by, created_at, updated_at, indexing_at, \
                 completed_at, search_text) ",
            );
            insert.push_values(chunk, |mut row, (id, position, segment)| {
                row.push_bind(*id).push_bind(document.tenant_id).push_bind(document.dataset_id).push_bind(document.id)
                    .push_bind(*position).push_bind(&segment.content)
                    .push_bind(segment.content.chars().count() as i32).push_bind(segment.tokens)
                    .push_bind(serde_json::to_string(&segment.keywords).unwrap_or_else(|_| "[]".into()))
                    .push_bind(id.to_string()).push_bind(&segment.hash).push_bind(document.created_by)
                    .push_bind(now).push_bind(now).push_bind(now).push_bind(now)
                    .push_bind(&segment.search_text);
            });
            insert.build().execute(&mut *tx).await?;
        }
        let children: Vec<(Uuid, &[String])> = rows.iter().map(|(id, _, s)| (*id, s.children.as_slice())).collect();
        super::child_chunks_repo::insert_children!(tx, document, document.created_by, &children, now);
        let keywords: Vec<(Uuid, &String)> =
            rows.iter().flat_map(|(id, _, segment)| segment.keywords.iter().map(move |k| (*id, k))).collect();
        super::segments_repo::insert_keywords!(tx, document.dataset_id, keywords);
        sqlx::query(
            "UPDATE documents SET indexing_status = 'completed', completed_at = $1, updated_at = $1, \
             word_count = $2, tokens = $3, indexing_latency = $4, error = NULL WHERE id = $5",
        )
        .bind(now).bind(word_count as i32).bind(tokens as i32).bind(latency).bind(document.id)
        .execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// (completed, total) segments of a document.
pub async fn segment_counts(db: &Db, document_id: Uuid) -> Result<(i64, i64), RepoError> {
    let sql = "SELECT count(*), COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) \
               FROM document_segments WHERE document_id = $1";
    let (total, completed): (i64, i64) =
        on_db!(db, pool => sqlx::query_as(sql).bind(document_id).fetch_one(pool).await?);
    Ok((completed, total))
}

/// The sum of segment hits of each of these documents, in one query.
pub async fn documents_hits(
    db: &Db,
    documents: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, i64>, RepoError> {
    if documents.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT document_id, COALESCE(SUM(hit_count), 0) FROM document_segments \
         WHERE document_id IN ({}) GROUP BY document_id",
        crate::infra::db::placeholders(1, documents.len())
    );
    let rows: Vec<(Uuid, i64)> = on_db!(db, pool => {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in documents {
            query = query.bind(*id);
        }
        query.fetch_all(pool).await?
    });
    Ok(rows.into_iter().collect())
}

/// Segments of searchable documents that contain any of `keywords`, most matches first.
pub async fn keyword_search(
    db: &Db,
    dataset_id: Uuid,
    keywords: &[String],
    limit: i64,
) -> Result<Vec<(Segment, i64)>, RepoError> {
    if keywords.is_empty() {
        return Ok(Vec::new());
    }

    let columns: Vec<String> = SEGMENT_COLUMNS.split(',').map(|c| format!("s.{}", c.trim())).collect();
    let sql = format!(
        "SELECT {}, m.matches FROM (SELECT segment_id, count(*) AS matches FROM segment_keywords \
         WHERE dataset_id = $1 AND keyword IN ({}) GROUP BY segment_id) m \
         JOIN document_segments s ON s.id = m.segment_id JOIN documents d ON d.id = s.document_id \
         WHERE s.enabled AND d.enabled AND NOT d.archived AND d.indexing_status = 'completed' \
         ORDER BY m.matches DESC, s.position LIMIT $2",
        columns.join(", "),
        placeholders(3, keywords.len())
    );
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        segment: Segment,
        matches: i64,
    }
    let rows: Vec<Row> = on_db!(db, pool => {
        let mut query = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql)).bind(dataset_id).bind(limit);
        for keyword in keywords {
            query = query.bind(keyword);
        }
        query.fetch_all(pool).await?
    });
    Ok(rows.into_iter().map(|r| (r.segment, r.matches)).collect())
}

/// Counts a retrieval hit on each segment.
pub async fn record_hits(db: &Db, segment_ids: &[Uuid]) -> Result<(), RepoError> {
    if segment_ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE document_segments SET hit_count = hit_count + 1 WHERE id IN ({})",
        placeholders(1, segment_ids.len())
    );
    on_db!(db, pool => {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in segment_ids {
            query = query.bind(id);
        }
        query.execute(pool).await.map(drop)?
    });
    Ok(())
}

/// Documents by id, for retrieval records.
pub async fn find_documents(db: &Db, ids: &[Uuid]) -> Result<Vec<Document>, RepoError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql =
        format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id IN ({})", placeholders(1, ids.len()));
    Ok(on_db!(db, pool => {
        let mut query = sqlx::query_as::<_, Document>(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id);
        }
        query.fetch_all(pool).await?
    }))
}

/// A document by id alone (the indexing task knows no tenant).
pub async fn find_document_by_id(db: &Db, id: Uuid) -> Result<Option<Document>, RepoError> {
    let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, Document>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?),
    )
}

/// Full-text search over searchable segments (PostgreSQL `tsvector`, SQLite FTS5): any of
/// `tokens` matches; best first, with the engine's own relevance (higher is better).
pub async fn full_text_search(
    db: &Db,
    dataset_id: Uuid,
    tokens: &[String],
    limit: i64,
) -> Result<Vec<(Segment, f64)>, RepoError> {
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        segment: Segment,
        relevance: f64,
    }
    let columns: Vec<String> = SEGMENT_COLUMNS.split(',').map(|c| format!("s.{}", c.trim())).collect();
    let searchable = "s.dataset_id = $1 AND s.enabled AND d.enabled AND NOT d.archived AND d.indexing_status = 'completed'";
    let rows: Vec<Row> = match db {
        Db::Postgres(pool) => {
            // Each token quoted as a tsquery lexeme; tokens are letters and digits only.
            let query: Vec<String> = tokens.iter().map(|t| format!("'{}'", t.replace('\'', "''"))).collect();
            let sql = format!(
                "SELECT {}, ts_rank(s.search_vector, q)::float8 AS relevance \
                 FROM document_segments s JOIN documents d ON d.id = s.document_id, to_tsquery('simple', $2) q \
                 WHERE {searchable} AND s.search_vector @@ q ORDER BY relevance DESC, s.position LIMIT $3",
                columns.join(", ")
            );
            sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
                .bind(dataset_id)
                .bind(query.join(" | "))
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
        Db::Sqlite(pool) => {
            let query: Vec<String> =
                tokens.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect();
            let sql = format!(
                "SELECT {}, -bm25(segment_fts) AS relevance FROM segment_fts \
                 JOIN document_segments s ON s.rowid = segment_fts.rowid JOIN documents d ON d.id = s.document_id \
                 WHERE segment_fts MATCH $2 AND {searchable} ORDER BY bm25(segment_fts), s.position LIMIT $3",
                columns.join(", ")
            );
            sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
                .bind(dataset_id)
                .bind(query.join(" OR "))
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows.into_iter().map(|r| (r.segment, r.relevance)).collect())
}
