//! SQL for segments edited through the API: add, list, find, update, delete, each keeping
//! the keyword index and the document's counts in step.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::documents::{Document, SEGMENT_COLUMNS, Segment};
use super::documents_repo::NewSegment;
use super::text::SegmentIndex;
use crate::accounts::repo::RepoError;
use crate::infra::db::Db;
use crate::on_db;

/// Writes keyword-index rows, `(segment id, keyword)` pairs of one dataset (after the
/// segments' old rows were removed), in multi-row statements: 5,000 rows of 3 values stay
/// under SQLite's and PostgreSQL's bind limits.
macro_rules! insert_keywords {
    ($tx:expr, $dataset:expr, $pairs:expr) => {
        for chunk in $pairs.chunks(5000) {
            let mut insert =
                sqlx::QueryBuilder::new("INSERT INTO segment_keywords (dataset_id, keyword, segment_id) ");
            insert.push_values(chunk, |mut row, (segment, keyword): &(Uuid, &String)| {
                row.push_bind($dataset).push_bind(*keyword).push_bind(*segment);
            });
            insert.build().execute(&mut *$tx).await?;
        }
    };
}

/// A segment's keywords as index rows.
pub(crate) fn keyword_rows(segment: Uuid, keywords: &[String]) -> Vec<(Uuid, &String)> {
    keywords.iter().map(|k| (segment, k)).collect()
}
pub(crate) use insert_keywords;

/// Recomputes a document's word and token counts from its segments.
const REFRESH_COUNTS: &str = "UPDATE documents SET \
     word_count = (SELECT COALESCE(SUM(word_count), 0) FROM document_segments WHERE document_id = $1), \
     tokens = (SELECT COALESCE(SUM(tokens), 0) FROM document_segments WHERE document_id = $1), \
     updated_at = $2 WHERE id = $1";

/// Appends segments after the document's last one; returns their ids in order.
pub async fn append(
    db: &Db,
    document: &Document,
    segments: &[NewSegment],
    created_by: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, RepoError> {
    let mut ids = Vec::with_capacity(segments.len());
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let last: i32 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM document_segments WHERE document_id = $1")
            .bind(document.id).fetch_one(&mut *tx).await?;
        for (index, segment) in segments.iter().enumerate() {
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO document_segments (id, tenant_id, dataset_id, document_id, position, content, word_count, \
                 tokens, keywords, index_node_id, index_node_hash, created_by, created_at, updated_at, indexing_at, \
                 completed_at, search_text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $13, $13, $14)",
            )
            .bind(id).bind(document.tenant_id).bind(document.dataset_id).bind(document.id)
            .bind(last + index as i32 + 1).bind(&segment.content).bind(segment.content.chars().count() as i32)
            .bind(segment.tokens).bind(serde_json::to_string(&segment.keywords).unwrap_or_else(|_| "[]".into()))
            .bind(id.to_string()).bind(&segment.hash).bind(created_by).bind(now)
            .bind(&segment.search_text)
            .execute(&mut *tx).await?;
            ids.push(id);
        }
        let keywords: Vec<(Uuid, &String)> =
            ids.iter().zip(segments).flat_map(|(id, s)| keyword_rows(*id, &s.keywords)).collect();
        insert_keywords!(tx, document.dataset_id, keywords);
        let children: Vec<(Uuid, &[String])> =
            ids.iter().zip(segments).map(|(id, s)| (*id, s.children.as_slice())).collect();
        super::child_chunks_repo::insert_children!(tx, document, created_by, &children, now);
        sqlx::query(REFRESH_COUNTS).bind(document.id).bind(now).execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(ids)
}

/// A page of a document's segments by position, filtered by status and a content keyword.
pub async fn list(
    db: &Db,
    document_id: Uuid,
    status: Option<&str>,
    keyword: Option<&str>,
    page: u32,
    limit: u32,
) -> Result<(Vec<Segment>, i64), RepoError> {
    let pattern = super::repo::like_pattern(keyword);
    let filter = "document_id = $1 AND ($2 IS NULL OR status = $2) \
                  AND ($3 IS NULL OR lower(content) LIKE lower($3) ESCAPE '\\')";
    let sql = format!(
        "SELECT {SEGMENT_COLUMNS} FROM document_segments WHERE {filter} ORDER BY position {}",
        crate::infra::db::page_clause(page, limit)
    );
    let count = format!("SELECT count(*) FROM document_segments WHERE {filter}");
    on_db!(db, pool => {
        let rows = sqlx::query_as::<_, Segment>(sqlx::AssertSqlSafe(sql))
            .bind(document_id).bind(status).bind(&pattern).fetch_all(pool).await?;
        let total = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count))
            .bind(document_id).bind(status).bind(&pattern).fetch_one(pool).await?;
        Ok((rows, total))
    })
}

/// Segments by id, in the order given (missing ones skipped).
pub async fn find_many(db: &Db, document_id: Uuid, ids: &[Uuid]) -> Result<Vec<Segment>, RepoError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(segment) = find(db, document_id, *id).await? {
            out.push(segment);
        }
    }
    Ok(out)
}

pub async fn find(db: &Db, document_id: Uuid, id: Uuid) -> Result<Option<Segment>, RepoError> {
    let sql = format!("SELECT {SEGMENT_COLUMNS} FROM document_segments WHERE id = $1 AND document_id = $2");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Segment>(sqlx::AssertSqlSafe(sql))
        .bind(id).bind(document_id).fetch_optional(pool).await?))
}

/// Writes a segment's content, keywords and switches back, re-indexing it; `children`
/// replace its child chunks (regenerated ones).
pub async fn update(
    db: &Db,
    document: &Document,
    segment: &Segment,
    index: &SegmentIndex,
    children: Option<&[String]>,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    let keywords = &index.keywords;
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE document_segments SET content = $1, answer = $2, word_count = $3, tokens = $4, keywords = $5, \
             index_node_hash = $6, enabled = $7, disabled_at = $8, disabled_by = $9, updated_at = $10, \
             updated_by = $11, indexing_at = $10, completed_at = $10, search_text = $13 WHERE id = $12",
        )
        .bind(&segment.content).bind(&segment.answer).bind(segment.word_count).bind(segment.tokens)
        .bind(serde_json::to_string(keywords).unwrap_or_else(|_| "[]".into())).bind(&segment.index_node_hash)
        .bind(segment.enabled).bind(segment.disabled_at).bind(segment.disabled_by).bind(now)
        .bind(segment.updated_by).bind(segment.id).bind(&index.search_text)
        .execute(&mut *tx).await?;
        if let Some(children) = children {
            sqlx::query("DELETE FROM child_chunks WHERE segment_id = $1").bind(segment.id).execute(&mut *tx).await?;
            let pairs = [(segment.id, children)];
            super::child_chunks_repo::insert_children!(tx, document, segment.created_by, &pairs, now);
        }
        sqlx::query("DELETE FROM segment_keywords WHERE segment_id = $1").bind(segment.id).execute(&mut *tx).await?;
        insert_keywords!(tx, segment.dataset_id, keyword_rows(segment.id, keywords));
        sqlx::query(REFRESH_COUNTS).bind(segment.document_id).bind(now).execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Deletes a segment (its keywords go with it); returns whether it existed.
pub async fn delete(db: &Db, document_id: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<bool, RepoError> {
    let deleted = on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let done = sqlx::query("DELETE FROM document_segments WHERE id = $1 AND document_id = $2")
            .bind(id).bind(document_id).execute(&mut *tx).await?.rows_affected();
        sqlx::query(REFRESH_COUNTS).bind(document_id).bind(now).execute(&mut *tx).await?;
        tx.commit().await?;
        done
    });
    Ok(deleted > 0)
}
