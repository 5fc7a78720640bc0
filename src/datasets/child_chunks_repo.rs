//! SQL for child chunks: written with their parent segments by indexing, listed, and edited
//! through the API. Every edit re-indexes the parent, which retrieval finds them by.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::documents::{CHILD_CHUNK_COLUMNS, ChildChunk, Segment};
use crate::accounts::repo::RepoError;
use crate::infra::db::{Db, placeholders};
use crate::on_db;

/// Inserts automatic child chunks for `(segment id, contents)` pairs, positions from 1, in
/// multi-row statements (16 values a row, 500 rows: under both backends' bind limits).
macro_rules! insert_children {
    ($tx:expr, $document:expr, $created_by:expr, $pairs:expr, $now:expr) => {{
        let rows: Vec<(Uuid, Uuid, i32, &String)> = $pairs
            .iter()
            .flat_map(|(segment, children): &(Uuid, &[String])| {
                children.iter().enumerate().map(move |(i, c)| (Uuid::new_v4(), *segment, i as i32 + 1, c))
            })
            .collect();
        for chunk in rows.chunks(500) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO child_chunks (id, tenant_id, dataset_id, document_id, segment_id, position, content, \
                 word_count, index_node_id, index_node_hash, type, created_by, created_at, updated_at, indexing_at, \
                 completed_at) ",
            );
            insert.push_values(chunk, |mut row, (id, segment, position, content)| {
                row.push_bind(*id).push_bind($document.tenant_id).push_bind($document.dataset_id)
                    .push_bind($document.id).push_bind(*segment).push_bind(*position).push_bind(*content)
                    .push_bind(content.chars().count() as i32).push_bind(id.to_string())
                    .push_bind(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content.as_bytes())))
                    .push_bind("automatic").push_bind($created_by)
                    .push_bind($now).push_bind($now).push_bind($now).push_bind($now);
            });
            insert.build().execute(&mut *$tx).await?;
        }
    }};
}
pub(crate) use insert_children;

/// Recomputes a segment's keywords and full-text tokens from its content and its children.
macro_rules! reindex_segment {
    ($tx:expr, $segment:expr, $now:expr) => {{
        let content: String = sqlx::query_scalar("SELECT content FROM document_segments WHERE id = $1")
            .bind($segment.id)
            .fetch_one(&mut *$tx)
            .await?;
        let children: Vec<String> =
            sqlx::query_scalar("SELECT content FROM child_chunks WHERE segment_id = $1 ORDER BY position")
                .bind($segment.id)
                .fetch_all(&mut *$tx)
                .await?;
        let index =
            super::text::segment_index(&content, &children, None, super::indexing::MAX_KEYWORDS_PER_SEGMENT);
        sqlx::query(
            "UPDATE document_segments SET keywords = $1, search_text = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(serde_json::to_string(&index.keywords).unwrap_or_else(|_| "[]".into()))
        .bind(&index.search_text)
        .bind($now)
        .bind($segment.id)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("DELETE FROM segment_keywords WHERE segment_id = $1")
            .bind($segment.id)
            .execute(&mut *$tx)
            .await?;
        let rows = super::segments_repo::keyword_rows($segment.id, &index.keywords);
        super::segments_repo::insert_keywords!($tx, $segment.dataset_id, rows);
    }};
}

/// The child chunks of these segments, by segment and position.
pub async fn for_segments(db: &Db, segment_ids: &[Uuid]) -> Result<Vec<ChildChunk>, RepoError> {
    let mut out = Vec::new();
    for ids in segment_ids.chunks(500) {
        let sql = format!(
            "SELECT {CHILD_CHUNK_COLUMNS} FROM child_chunks WHERE segment_id IN ({}) ORDER BY segment_id, position",
            placeholders(1, ids.len())
        );
        let rows = on_db!(db, pool => {
            let mut query = sqlx::query_as::<_, ChildChunk>(sqlx::AssertSqlSafe(sql));
            for id in ids {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await?
        });
        out.extend(rows);
    }
    Ok(out)
}

/// A page of a segment's child chunks by position, filtered by a content keyword.
pub async fn list(
    db: &Db,
    segment_id: Uuid,
    keyword: Option<&str>,
    page: u32,
    limit: u32,
) -> Result<(Vec<ChildChunk>, i64), RepoError> {
    let pattern = super::repo::like_pattern(keyword);
    let filter = "segment_id = $1 AND ($2 IS NULL OR lower(content) LIKE lower($2) ESCAPE '\\')";
    let sql = format!(
        "SELECT {CHILD_CHUNK_COLUMNS} FROM child_chunks WHERE {filter} ORDER BY position {}",
        crate::infra::db::page_clause(page, limit)
    );
    let count = format!("SELECT count(*) FROM child_chunks WHERE {filter}");
    on_db!(db, pool => {
        let rows = sqlx::query_as::<_, ChildChunk>(sqlx::AssertSqlSafe(sql))
            .bind(segment_id).bind(&pattern).fetch_all(pool).await?;
        let total = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count))
            .bind(segment_id).bind(&pattern).fetch_one(pool).await?;
        Ok((rows, total))
    })
}

pub async fn find(db: &Db, segment_id: Uuid, id: Uuid) -> Result<Option<ChildChunk>, RepoError> {
    let sql = format!("SELECT {CHILD_CHUNK_COLUMNS} FROM child_chunks WHERE id = $1 AND segment_id = $2");
    Ok(on_db!(db, pool => sqlx::query_as::<_, ChildChunk>(sqlx::AssertSqlSafe(sql))
        .bind(id).bind(segment_id).fetch_optional(pool).await?))
}

/// Adds a `customized` child chunk after the segment's last one; returns its id.
pub async fn insert(
    db: &Db,
    segment: &Segment,
    content: &str,
    by: Uuid,
    now: DateTime<Utc>,
) -> Result<Uuid, RepoError> {
    let id = Uuid::new_v4();
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let last: i32 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM child_chunks WHERE segment_id = $1")
            .bind(segment.id).fetch_one(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO child_chunks (id, tenant_id, dataset_id, document_id, segment_id, position, content, word_count, \
             index_node_id, index_node_hash, type, created_by, created_at, updated_at, indexing_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'customized', $11, $12, $12, $12, $12)",
        )
        .bind(id).bind(segment.tenant_id).bind(segment.dataset_id).bind(segment.document_id).bind(segment.id)
        .bind(last + 1).bind(content).bind(content.chars().count() as i32).bind(id.to_string())
        .bind(hex::encode(Sha256::digest(content.as_bytes()))).bind(by).bind(now)
        .execute(&mut *tx).await?;
        reindex_segment!(tx, segment, now);
        tx.commit().await?;
    });
    Ok(id)
}

/// Rewrites a child chunk's content (it becomes `customized`).
pub async fn update(
    db: &Db,
    segment: &Segment,
    id: Uuid,
    content: &str,
    by: Uuid,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE child_chunks SET content = $1, word_count = $2, index_node_hash = $3, type = 'customized', \
             updated_by = $4, updated_at = $5, indexing_at = $5, completed_at = $5 WHERE id = $6 AND segment_id = $7",
        )
        .bind(content).bind(content.chars().count() as i32).bind(hex::encode(Sha256::digest(content.as_bytes())))
        .bind(by).bind(now).bind(id).bind(segment.id)
        .execute(&mut *tx).await?;
        reindex_segment!(tx, segment, now);
        tx.commit().await?;
    });
    Ok(())
}

/// Deletes a child chunk.
pub async fn delete(db: &Db, segment: &Segment, id: Uuid, now: DateTime<Utc>) -> Result<(), RepoError> {
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM child_chunks WHERE id = $1 AND segment_id = $2")
            .bind(id).bind(segment.id).execute(&mut *tx).await?;
        reindex_segment!(tx, segment, now);
        tx.commit().await?;
    });
    Ok(())
}
