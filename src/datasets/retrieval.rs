//! Retrieval (`/retrieve`, `/hit-testing`): keyword search over a dataset's segments, as
//! Dify's economy datasets search, or full-text search on request, with records in Dify's
//! shape.

use serde_json::{Value, json};
use uuid::Uuid;

use super::documents::{ChildChunk, Segment};
use super::documents_repo as repo;
use super::documents_service::Documents;
use super::model::Dataset;
use super::service::DatasetsError;
use super::text;

/// The longest retrieval query Dify accepts.
pub const MAX_QUERY_CHARS: usize = 250;

fn invalid(message: impl Into<String>) -> DatasetsError {
    DatasetsError::InvalidParam(message.into())
}

impl Documents<'_> {
    /// Retrieval over a dataset's segments: `full_text_search` when asked for, otherwise
    /// keyword search, as Dify's economy datasets search.
    pub async fn retrieve(
        &self,
        dataset: &Dataset,
        request: &Value,
        by: Uuid,
    ) -> Result<Value, DatasetsError> {
        let query = request.get("query").and_then(Value::as_str).map(str::trim).unwrap_or_default();
        if query.is_empty() {
            return Err(invalid("Query is required."));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(invalid(format!("Query cannot exceed {MAX_QUERY_CHARS} characters.")));
        }
        let defaults = dataset.retrieval_model_dict();
        let model = request.get("retrieval_model").filter(|m| m.is_object()).unwrap_or(&defaults);
        let top_k =
            model.get("top_k").and_then(Value::as_u64).or_else(|| defaults["top_k"].as_u64()).unwrap_or(4);
        let top_k = top_k.clamp(1, 100) as i64;
        let threshold = (model.get("score_threshold_enabled") == Some(&Value::Bool(true)))
            .then(|| model.get("score_threshold").and_then(Value::as_f64).unwrap_or(0.0));
        let keywords: Vec<String> = text::keywords(query).into_iter().collect();
        let method = model.get("search_method").and_then(Value::as_str).unwrap_or("keyword_search");
        let scored: Vec<(Segment, f64)> = match method {
            // Scores relative to the best match, so the first record scores 1.
            "full_text_search" => {
                let found = repo::full_text_search(self.db, dataset.id, &keywords, top_k).await?;
                let best = found.first().map_or(1.0, |(_, r)| if *r > 0.0 { *r } else { 1.0 });
                found
                    .into_iter()
                    .map(|(segment, relevance)| (segment, (relevance / best).clamp(0.0, 1.0)))
                    .collect()
            }
            "keyword_search" | "semantic_search" | "hybrid_search" => {
                // Economy datasets search by keyword whatever the method, as Dify's do.
                let found = repo::keyword_search(self.db, dataset.id, &keywords, top_k).await?;
                let total = keywords.len().max(1) as f64;
                found.into_iter().map(|(segment, matches)| (segment, matches as f64 / total)).collect()
            }
            _ => return Err(invalid("retrieval_model.search_method is invalid.")),
        };
        let hits: Vec<(Segment, f64)> =
            scored.into_iter().filter(|(_, score)| threshold.is_none_or(|t| *score >= t)).collect();
        let ids: Vec<Uuid> = hits.iter().map(|(s, _)| s.id).collect();
        repo::record_hits(self.db, &ids).await?;
        super::unused::record_query(self.db, dataset.id, query, by).await?;
        let mut document_ids: Vec<Uuid> = hits.iter().map(|(s, _)| s.document_id).collect();
        document_ids.sort_unstable();
        document_ids.dedup();
        let documents = repo::find_documents(self.db, &document_ids).await?;
        let parents: Vec<Uuid> = hits
            .iter()
            .filter(|(s, _)| {
                documents.iter().any(|d| d.id == s.document_id && d.doc_form == "hierarchical_model")
            })
            .map(|(s, _)| s.id)
            .collect();
        let children = super::child_chunks_repo::for_segments(self.db, &parents).await?;
        let records: Vec<Value> = hits
            .iter()
            .map(|(segment, score)| {
                let mut body = segment.json();
                body["hit_count"] = json!(segment.hit_count + 1);
                if let Some(d) = documents.iter().find(|d| d.id == segment.document_id) {
                    body["document"] = json!({
                        "id": d.id, "data_source_type": d.data_source_type, "name": d.name,
                        "doc_type": d.doc_type, "doc_metadata": d.metadata_dict(),
                    });
                }
                let matched = matching_children(&children, segment.id, &keywords);
                json!({"segment": body, "child_chunks": matched, "score": score, "tsne_position": null, "files": [], "summary": null})
            })
            .collect();
        Ok(json!({"query": {"content": query}, "records": records}))
    }
}

/// The child chunks of a parent segment that contain query keywords, best first, each
/// scored by the share of the query's keywords it contains (Dify returns the children its
/// search matched, with their scores).
fn matching_children(children: &[ChildChunk], segment_id: Uuid, keywords: &[String]) -> Vec<Value> {
    let total = keywords.len().max(1) as f64;
    let mut scored: Vec<(&ChildChunk, f64)> = children
        .iter()
        .filter(|c| c.segment_id == segment_id)
        .filter_map(|child| {
            let own = text::keywords(&child.content);
            let matches = keywords.iter().filter(|k| own.contains(k.as_str())).count();
            (matches > 0).then(|| (child, matches as f64 / total))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.position.cmp(&b.0.position)));
    scored
        .into_iter()
        .map(|(c, score)| json!({"id": c.id, "content": c.content, "position": c.position, "score": score}))
        .collect()
}
