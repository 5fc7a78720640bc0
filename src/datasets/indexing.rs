//! The indexing pipeline a worker runs on the `dataset` queue: parse → clean → split →
//! index, each step recorded on the document as Dify records it. Re-delivery is safe: the
//! segments of a document are replaced in one transaction, and a completed document is left
//! alone.

use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::documents_repo::{self as repo, NewSegment, Step};
use super::text::{self, Cleaning, Splitting};
use crate::tasks::{TaskContext, TaskError, TaskServices};

/// The task name, on the `dataset` queue.
pub const TASK: &str = "document_indexing_task";
/// The queue documents are indexed on.
pub const QUEUE: &str = "dataset";

/// The task's arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexArgs {
    pub document_id: Uuid,
}

/// A process rule, checked: what cleaning and splitting to do.
#[derive(Debug, Clone)]
pub struct Rule {
    pub mode: String,
    pub cleaning: Cleaning,
    pub splitting: Splitting,
    /// Hierarchical mode: how parents are cut and how each is split into child chunks.
    pub hierarchy: Option<Hierarchy>,
}

/// Dify's parent-child chunking (`hierarchical` mode, `hierarchical_model` documents).
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// `full-doc`: the whole document is one parent; `paragraph`: parents are split by the
    /// rule's segmentation.
    pub full_doc: bool,
    /// `subchunk_segmentation`: how a parent is split into child chunks.
    pub children: Splitting,
}

/// Dify's AUTOMATIC_RULES.
pub fn automatic_rules() -> Value {
    json!({
        "pre_processing_rules": [
            {"id": "remove_extra_spaces", "enabled": true},
            {"id": "remove_urls_emails", "enabled": false}
        ],
        "segmentation": {"delimiter": "\n", "max_tokens": 500, "chunk_overlap": 50}
    })
}

/// Checks `rules.<key>` (a segmentation): a separator, and `max_tokens` within the limit
/// unless `max_tokens_optional` (full-doc parents).
fn check_segmentation(rules: &Value, key: &str, limit: u32, max_tokens_optional: bool) -> Result<(), String> {
    let segmentation =
        rules.get(key).filter(|s| s.is_object()).ok_or(format!("process_rule.rules.{key} is required."))?;
    let separator = segmentation.get("separator").and_then(Value::as_str);
    if separator.is_none_or(str::is_empty) {
        return Err(format!("process_rule.rules.{key}.separator is required."));
    }
    let max_tokens = match segmentation.get("max_tokens").filter(|m| !m.is_null()) {
        None if max_tokens_optional => return Ok(()),
        None => return Err(format!("process_rule.rules.{key}.max_tokens is required.")),
        Some(value) => value.as_u64().ok_or(format!("process_rule.rules.{key}.max_tokens is invalid."))?,
    };
    if max_tokens < 50 || max_tokens > u64::from(limit) {
        return Err(format!("Custom segment length should be between 50 and {limit}."));
    }
    let overlap = segmentation.get("chunk_overlap").filter(|o| !o.is_null()).map_or(Some(0), Value::as_u64);
    if overlap.is_none_or(|o| o >= max_tokens) {
        return Err(format!("process_rule.rules.{key}.chunk_overlap must be below max_tokens."));
    }
    Ok(())
}

/// Checks `rules.pre_processing_rules` (optional) as Dify does.
fn check_pre_processing(rules: &Value) -> Result<(), String> {
    let Some(pre) = rules.get("pre_processing_rules").filter(|p| !p.is_null()) else {
        return Ok(());
    };
    let list = pre.as_array().ok_or("process_rule.rules.pre_processing_rules must be a list.")?;
    for item in list {
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
        if !matches!(id, "remove_stopwords" | "remove_extra_spaces" | "remove_urls_emails") {
            return Err("process_rule.rules.pre_processing_rules.id is invalid.".into());
        }
        if !item.get("enabled").is_some_and(Value::is_boolean) {
            return Err("process_rule.rules.pre_processing_rules.enabled is invalid.".into());
        }
    }
    Ok(())
}

/// Checks a `process_rule` as Dify does and returns the mode and the rules to store.
pub fn check_process_rule(rule: &Value, max_tokens_limit: u32) -> Result<(String, Value), String> {
    let mode = rule.get("mode").and_then(Value::as_str).ok_or("process_rule.mode is required.")?;
    if mode == "automatic" {
        return Ok(("automatic".into(), automatic_rules()));
    }
    if !matches!(mode, "custom" | "hierarchical") {
        return Err("process_rule.mode is invalid.".into());
    }
    let rules = rule.get("rules").filter(|r| r.is_object()).ok_or("process_rule.rules is required.")?;
    check_pre_processing(rules)?;
    if mode == "custom" {
        check_segmentation(rules, "segmentation", max_tokens_limit, false)?;
        return Ok(("custom".into(), rules.clone()));
    }
    let parent_mode = match rules.get("parent_mode").filter(|p| !p.is_null()) {
        None => "paragraph",
        Some(value) => match value.as_str() {
            Some(m @ ("paragraph" | "full-doc")) => m,
            _ => return Err("process_rule.rules.parent_mode must be paragraph or full-doc.".into()),
        },
    };
    check_segmentation(rules, "segmentation", max_tokens_limit, parent_mode == "full-doc")?;
    check_segmentation(rules, "subchunk_segmentation", max_tokens_limit, false)?;
    let mut stored = rules.clone();
    stored["parent_mode"] = json!(parent_mode);
    Ok(("hierarchical".into(), stored))
}

/// Which `doc_form` a process-rule mode needs: hierarchical rules make parent-child
/// documents, the others plain text ones.
pub fn doc_form_for(mode: &str) -> &'static str {
    if mode == "hierarchical" { "hierarchical_model" } else { "text_model" }
}

fn splitting_from(segmentation: &Value, default_max: u64) -> Splitting {
    Splitting {
        separator: segmentation["separator"].as_str().map(str::to_owned),
        max_tokens: segmentation["max_tokens"].as_u64().unwrap_or(default_max) as usize,
        chunk_overlap: segmentation["chunk_overlap"].as_u64().unwrap_or(0) as usize,
    }
}

/// Turns stored rules into what the pipeline does.
pub fn rule_from(mode: &str, rules: Option<&str>) -> Rule {
    let rules: Value = rules.and_then(|r| serde_json::from_str(r).ok()).unwrap_or_else(automatic_rules);
    let enabled = |id: &str| {
        rules["pre_processing_rules"]
            .as_array()
            .is_some_and(|list| list.iter().any(|r| r["id"] == id && r["enabled"] == true))
    };
    let mut splitting = splitting_from(&rules["segmentation"], 500);
    if mode == "automatic" {
        // Automatic mode packs paragraphs and sentences; it has no separator of its own.
        splitting.separator = None;
    }
    let hierarchy = (mode == "hierarchical").then(|| Hierarchy {
        full_doc: rules["parent_mode"] == "full-doc",
        children: splitting_from(&rules["subchunk_segmentation"], 200),
    });
    Rule {
        mode: mode.to_owned(),
        cleaning: Cleaning {
            remove_extra_spaces: enabled("remove_extra_spaces"),
            remove_urls_emails: enabled("remove_urls_emails"),
        },
        splitting,
        hierarchy,
    }
}

/// Cuts a cleaned document into segments, each with its child chunks in hierarchical mode.
pub fn chunk(cleaned: &str, rule: &Rule) -> Vec<(String, Vec<String>)> {
    match &rule.hierarchy {
        None => text::split(cleaned, &rule.splitting).into_iter().map(|s| (s, Vec::new())).collect(),
        Some(hierarchy) => {
            let parents = if hierarchy.full_doc {
                let whole = cleaned.trim();
                if whole.is_empty() { Vec::new() } else { vec![whole.to_owned()] }
            } else {
                text::split(cleaned, &rule.splitting)
            };
            parents
                .into_iter()
                .map(|parent| {
                    let children = text::split(&parent, &hierarchy.children);
                    (parent, children)
                })
                .collect()
        }
    }
}

/// A segment ready to store: its content, what it is found by, and its child chunks.
/// `keywords` given by a client replace the extracted ones.
pub fn new_segment(content: String, children: Vec<String>, keywords: Option<&[String]>) -> NewSegment {
    let index = text::segment_index(&content, &children, keywords, MAX_KEYWORDS_PER_SEGMENT);
    NewSegment {
        tokens: text::estimate_tokens(&content) as i32,
        hash: hex::encode(Sha256::digest(content.as_bytes())),
        keywords: index.keywords,
        search_text: index.search_text,
        content,
        children,
    }
}

fn transient(error: impl std::fmt::Display) -> TaskError {
    TaskError::Transient(error.to_string())
}

/// Indexes one document (idempotent).
pub async fn index_document(
    services: Arc<TaskServices>,
    args: IndexArgs,
    ctx: TaskContext,
) -> Result<(), TaskError> {
    let db = &services.db;
    let Some(document) = repo::find_document_by_id(db, args.document_id).await.map_err(transient)? else {
        tracing::info!(document = %args.document_id, job = %ctx.job_id, "document was deleted; nothing to index");
        return Ok(());
    };
    if document.indexing_status == "completed" {
        return Ok(());
    }
    if document.is_paused {
        tracing::info!(document = %document.id, "indexing paused");
        return Ok(());
    }
    repo::advance(db, document.id, Step::Parsing, Utc::now()).await.map_err(transient)?;
    let document = repo::find_document_by_id(db, document.id).await.map_err(transient)?.unwrap_or(document);
    let content = match load_text(&services, &document).await? {
        Ok(text) => text,
        Err(reason) => {
            tracing::warn!(document = %document.id, %reason, "document cannot be indexed");
            repo::fail(db, document.id, &reason, Utc::now()).await.map_err(transient)?;
            return Ok(());
        }
    };
    repo::advance(db, document.id, Step::Cleaning, Utc::now()).await.map_err(transient)?;
    let rule = match document.dataset_process_rule_id {
        Some(id) => match repo::find_process_rule(db, id).await.map_err(transient)? {
            Some(stored) => rule_from(&stored.mode, stored.rules.as_deref()),
            None => rule_from("automatic", None),
        },
        None => rule_from("automatic", None),
    };
    let cleaned = text::clean(&content, rule.cleaning);
    if paused(&services, document.id).await? {
        return Ok(());
    }
    repo::advance(db, document.id, Step::Splitting, Utc::now()).await.map_err(transient)?;
    let chunks = chunk(&cleaned, &rule);
    if paused(&services, document.id).await? {
        return Ok(());
    }
    repo::advance(db, document.id, Step::Indexing, Utc::now()).await.map_err(transient)?;
    let segments: Vec<NewSegment> =
        chunks.into_iter().map(|(content, children)| new_segment(content, children, None)).collect();
    let count = segments.len();
    repo::replace_segments(db, &document, &segments, Utc::now()).await.map_err(transient)?;
    tracing::info!(document = %document.id, segments = count, mode = %rule.mode, "document indexed");
    Ok(())
}

/// Whether the document was paused (or deleted) since indexing started: then stop here;
/// resuming queues the work again.
async fn paused(services: &TaskServices, id: Uuid) -> Result<bool, TaskError> {
    let document = repo::find_document_by_id(&services.db, id).await.map_err(transient)?;
    let stop = document.is_none_or(|d| d.is_paused);
    if stop {
        tracing::info!(document = %id, "indexing paused");
    }
    Ok(stop)
}

/// Keywords kept per segment (a very long segment must not bloat the index).
pub const MAX_KEYWORDS_PER_SEGMENT: usize = 500;

/// The document's text, or why it has none (a storage outage is transient, a bad file not).
async fn load_text(
    services: &TaskServices,
    document: &super::documents::Document,
) -> Result<Result<String, String>, TaskError> {
    let Some(file_id) = document.upload_file_id else {
        return Ok(Err("the document has no stored file".into()));
    };
    let Some(file) = repo::find_upload_file(&services.db, file_id).await.map_err(transient)? else {
        return Ok(Err("the document's stored file record is gone".into()));
    };
    let bytes = match services.storage.operator().read(&file.storage_key).await {
        Ok(buffer) => buffer.to_vec(),
        Err(error) if error.kind() == opendal::ErrorKind::NotFound => {
            return Ok(Err(format!("the stored file {} is missing", file.storage_key)));
        }
        Err(error) => return Err(transient(format!("reading {}: {error}", file.storage_key))),
    };
    // Parsing (PDF above all) is CPU work: keep it off the async workers.
    let extension = file.extension.clone();
    tokio::task::spawn_blocking(move || super::extract::extract(&bytes, &extension))
        .await
        .map_err(|e| transient(format!("text extraction stopped: {e}")))
}
