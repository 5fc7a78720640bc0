//! Document operations: create by text (stored as a file, indexed on the worker), list, get,
//! delete, indexing status, and keyword retrieval.

use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::cleanup::{self, CleanArgs};
use super::documents::Document;
use super::documents_repo::{self as repo, UploadFile};
use super::extract;
use super::indexing::{self, IndexArgs};
use super::model::Dataset;
use super::repo as dataset_repo;
use super::service::DatasetsError;
use crate::config::Settings;
use crate::infra::db::Db;
use crate::infra::queue::{JobSpec, JobStore};
use crate::infra::storage::Storage;

/// Fields of create-by-text (Dify's names).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct CreateByText {
    /// 1 to 255 characters (required to create by text, and to update with `text`).
    pub name: Option<String>,
    /// The document's text (required to create by text).
    pub text: Option<String>,
    /// `{mode: automatic | custom | hierarchical, rules}`; required for the first document
    /// of a dataset created from a file, else the dataset's newest rule is reused.
    pub process_rule: Option<Value>,
    /// `economy`; required when the dataset has none yet (later documents inherit it).
    pub indexing_technique: Option<String>,
    /// `text_model` or `hierarchical_model` (the rule's by default); `qa_model` needs a
    /// chat model (400 `provider_not_initialize`).
    pub doc_form: Option<String>,
    /// Default `English`.
    pub doc_language: Option<String>,
    pub retrieval_model: Option<Value>,
    pub embedding_model: Option<String>,
    pub embedding_model_provider: Option<String>,
    pub original_document_id: Option<String>,
}

/// A file to store for a new document.
struct Upload {
    name: String,
    extension: String,
    bytes: Vec<u8>,
}

/// A new document's checked indexing choices.
struct Plan {
    technique: String,
    doc_form: String,
    rule: RuleChoice,
}

enum RuleChoice {
    /// Reuse the dataset's newest rule.
    Existing(Uuid),
    /// Store this (mode, rules).
    New(String, Value),
}

fn mime_for(extension: &str) -> &'static str {
    match extension {
        "pdf" => "application/pdf",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "json" => "application/json",
        "md" | "markdown" | "mdx" => "text/markdown",
        _ => "text/plain",
    }
}

/// Queues the indexing of a document on the `dataset` queue.
async fn queue_indexing(jobs: &JobStore, document_id: Uuid) -> Result<(), DatasetsError> {
    let args = serde_json::to_vec(&IndexArgs { document_id }).map_err(|e| invalid(e.to_string()))?;
    jobs.push(&[JobSpec::new(indexing::QUEUE, indexing::TASK, args)])
        .await
        .map(drop)
        .map_err(|e| invalid(format!("The indexing job could not be queued: {e}")))
}

/// What document operations need.
pub struct Documents<'a> {
    pub db: &'a Db,
    pub storage: &'a Storage,
    pub settings: &'a Settings,
}

fn invalid(message: impl Into<String>) -> DatasetsError {
    DatasetsError::InvalidParam(message.into())
}

/// A hierarchical rule makes parent-child documents and only those: each doc_form needs
/// its own rule mode.
fn check_rule_fits(doc_form: &str, mode: &str) -> Result<(), DatasetsError> {
    if (doc_form == "hierarchical_model") != (mode == "hierarchical") {
        return Err(invalid(format!(
            "process_rule.mode {mode} does not fit doc_form {doc_form}: hierarchical_model documents need \
             the hierarchical mode, and only they take it."
        )));
    }
    Ok(())
}

/// Dify's batch id: a timestamp and six random digits.
fn new_batch() -> Result<String, DatasetsError> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| invalid(e.to_string()))?;
    Ok(format!("{}{:06}", Utc::now().format("%Y%m%d%H%M%S"), u32::from_le_bytes(bytes) % 1_000_000))
}

impl Documents<'_> {
    /// Creates a document from text and queues its indexing.
    pub async fn create_by_text(
        &self,
        dataset: &Dataset,
        account_id: Uuid,
        request: CreateByText,
        jobs: Option<&JobStore>,
    ) -> Result<Document, DatasetsError> {
        let name = request.name.as_deref().map(str::trim).unwrap_or_default().to_owned();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(invalid("name is required (1 to 255 characters)."));
        }
        let content = request.text.clone().unwrap_or_default();
        if content.trim().is_empty() {
            return Err(invalid("text is required."));
        }
        let plan = self.plan(dataset, &request, false).await?;
        let upload =
            Upload { name: format!("{name}.txt"), extension: "txt".into(), bytes: content.into_bytes() };
        self.create(dataset, account_id, name, upload, plan, request.doc_language, jobs).await
    }

    /// Creates a document from an uploaded file (checked: extension, size, readable) and
    /// queues its indexing.
    pub async fn create_by_file(
        &self,
        dataset: &Dataset,
        account_id: Uuid,
        filename: &str,
        bytes: Vec<u8>,
        request: CreateByText,
        jobs: Option<&JobStore>,
    ) -> Result<Document, DatasetsError> {
        let upload = self.check_upload(filename, bytes).await?;
        let plan = self.plan(dataset, &request, true).await?;
        let name = upload.name.clone();
        self.create(dataset, account_id, name, upload, plan, request.doc_language, jobs).await
    }

    /// Checks an uploaded file: a name, an allowed and supported extension, the size limit,
    /// and that its text can be read.
    async fn check_upload(&self, filename: &str, bytes: Vec<u8>) -> Result<Upload, DatasetsError> {
        let filename = filename.trim().rsplit(['/', '\\']).next().unwrap_or_default().to_owned();
        if filename.is_empty() {
            return Err(DatasetsError::FilenameMissing);
        }
        let extension =
            filename.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
        let blacklist = &self.settings.knowledge.upload_file_extension_blacklist;
        if blacklist
            .split(',')
            .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
            .any(|e| !e.is_empty() && e == extension)
        {
            return Err(DatasetsError::ExtensionBlocked);
        }
        if !extract::supported(&extension) {
            return Err(DatasetsError::UnsupportedFileType(format!(
                "Supported: {}.",
                extract::SUPPORTED.join(", ")
            )));
        }
        let limit_mb = u64::from(self.settings.knowledge.upload_file_size_limit.0);
        if bytes.len() as u64 > limit_mb * 1024 * 1024 {
            return Err(DatasetsError::FileTooLarge(format!("{} bytes > {limit_mb} MB", bytes.len())));
        }
        // Read it now, so a corrupt or empty file is refused here rather than failing later.
        // The bytes go to the blocking thread and come back, rather than being copied.
        let ext = extension.clone();
        let (readable, bytes) =
            tokio::task::spawn_blocking(move || (extract::extract(&bytes, &ext).map(drop), bytes))
                .await
                .map_err(|e| invalid(format!("the file could not be checked: {e}")))?;
        readable.map_err(DatasetsError::UnsupportedFileType)?;
        Ok(Upload { name: filename, extension, bytes })
    }

    /// Checks the indexing choices of a new document against its dataset.
    async fn plan(
        &self,
        dataset: &Dataset,
        request: &CreateByText,
        from_file: bool,
    ) -> Result<Plan, DatasetsError> {
        let technique = match (&dataset.indexing_technique, request.indexing_technique.as_deref()) {
            (Some(existing), _) => existing.clone(),
            (None, Some("economy")) => "economy".to_owned(),
            (None, Some("high_quality")) => return Err(DatasetsError::ProviderNotInitialized),
            (None, Some(_)) => return Err(invalid("indexing_technique is invalid.")),
            (None, None) => return Err(invalid("indexing_technique is required.")),
        };
        if technique == "high_quality" {
            return Err(DatasetsError::ProviderNotInitialized);
        }
        let limit = self.settings.knowledge.indexing_max_segmentation_tokens_length.0;
        let (rule, mode) = match &request.process_rule {
            Some(rule) if !rule.is_null() => {
                let (mode, rules) = indexing::check_process_rule(rule, limit).map_err(invalid)?;
                (RuleChoice::New(mode.clone(), rules), mode)
            }
            _ => match repo::latest_process_rule(self.db, dataset.id).await? {
                Some(existing) => (RuleChoice::Existing(existing.id), existing.mode),
                None if from_file => return Err(invalid("process_rule is required.")),
                None => {
                    (RuleChoice::New("automatic".into(), indexing::automatic_rules()), "automatic".into())
                }
            },
        };
        // The first document fixes the dataset's doc_form; hierarchical rules imply theirs.
        let doc_form = match request.doc_form.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            Some(form) => form.to_owned(),
            None => dataset.doc_form.clone().unwrap_or_else(|| indexing::doc_form_for(&mode).to_owned()),
        };
        match doc_form.as_str() {
            "text_model" | "hierarchical_model" => {}
            "qa_model" => return Err(DatasetsError::LlmNotInitialized),
            _ => return Err(invalid("Invalid doc_form.")),
        }
        if dataset.doc_form.as_deref().is_some_and(|fixed| fixed != doc_form) {
            return Err(invalid("doc_form is different from the dataset doc_form."));
        }
        check_rule_fits(&doc_form, &mode)?;
        Ok(Plan { technique, doc_form, rule })
    }

    /// Records a checked process rule for the dataset.
    async fn store_rule(
        &self,
        dataset: &Dataset,
        mode: &str,
        rules: &Value,
        account_id: Uuid,
        now: chrono::DateTime<Utc>,
    ) -> Result<Uuid, DatasetsError> {
        Ok(repo::insert_process_rule(self.db, dataset.id, mode, Some(&rules.to_string()), account_id, now)
            .await?)
    }

    /// Writes an upload to `upload_files/{tenant}/{uuid}.{ext}` and records it.
    async fn store_upload(
        &self,
        dataset: &Dataset,
        account_id: Uuid,
        upload: Upload,
        now: chrono::DateTime<Utc>,
    ) -> Result<UploadFile, DatasetsError> {
        let file_id = Uuid::new_v4();
        let key = format!("upload_files/{}/{file_id}.{}", dataset.tenant_id, upload.extension);
        let size = upload.bytes.len() as i64;
        self.storage
            .operator()
            .write(&key, upload.bytes)
            .await
            .map_err(|e| invalid(format!("the file could not be stored: {e}")))?;
        let file = UploadFile {
            id: file_id,
            tenant_id: dataset.tenant_id,
            storage_key: key,
            name: upload.name,
            size,
            mime_type: Some(mime_for(&upload.extension).into()),
            extension: upload.extension,
            created_by: account_id,
            created_at: now,
        };
        repo::insert_upload_file(self.db, &file).await?;
        Ok(file)
    }

    /// Stores the file, records the document and queues its indexing.
    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        dataset: &Dataset,
        account_id: Uuid,
        name: String,
        upload: Upload,
        plan: Plan,
        doc_language: Option<String>,
        jobs: Option<&JobStore>,
    ) -> Result<Document, DatasetsError> {
        let jobs = jobs.ok_or_else(|| invalid("The job queue is not reachable yet; try again shortly."))?;
        let now = Utc::now();
        if dataset.indexing_technique.is_none() || dataset.doc_form.is_none() {
            let mut fixed = dataset.clone();
            fixed.indexing_technique = Some(plan.technique.clone());
            fixed.doc_form = Some(plan.doc_form.clone());
            fixed.data_source_type = Some("upload_file".into());
            fixed.updated_at = now;
            dataset_repo::update_dataset(self.db, &fixed).await?;
        }
        let file = self.store_upload(dataset, account_id, upload, now).await?;
        let file_id = file.id;
        let rule_id = match plan.rule {
            RuleChoice::Existing(id) => id,
            RuleChoice::New(mode, rules) => self.store_rule(dataset, &mode, &rules, account_id, now).await?,
        };
        let document = Document {
            id: Uuid::new_v4(),
            tenant_id: dataset.tenant_id,
            dataset_id: dataset.id,
            position: repo::next_position(self.db, dataset.id).await?,
            data_source_type: "upload_file".into(),
            data_source_info: Some(json!({"upload_file_id": file_id}).to_string()),
            dataset_process_rule_id: Some(rule_id),
            batch: new_batch()?,
            name,
            created_from: "api".into(),
            created_by: account_id,
            created_at: now,
            updated_at: now,
            upload_file_id: Some(file_id),
            word_count: 0,
            tokens: 0,
            indexing_status: "waiting".into(),
            processing_started_at: None,
            parsing_completed_at: None,
            cleaning_completed_at: None,
            splitting_completed_at: None,
            completed_at: None,
            indexing_latency: None,
            is_paused: false,
            paused_at: None,
            error: None,
            stopped_at: None,
            enabled: true,
            disabled_at: None,
            disabled_by: None,
            archived: false,
            archived_at: None,
            doc_form: plan.doc_form,
            doc_language: Some(doc_language.unwrap_or_else(|| "English".into())),
            doc_type: None,
            doc_metadata: None,
        };
        repo::insert_document(self.db, &document).await?;
        let mut document = document;
        if dataset.built_in_field_enabled {
            super::metadata::refresh_built_in(self.db, document.id, true).await?;
            document = repo::find_document_by_id(self.db, document.id).await?.unwrap_or(document);
        }
        if let Err(error) = queue_indexing(jobs, document.id).await {
            // The document records why it will not be indexed; re-creating it is the client's call.
            repo::fail(self.db, document.id, &error.to_string(), Utc::now()).await?;
            return Err(error);
        }
        Ok(document)
    }

    /// Deletes a dataset: its rows at once, its stored files through a `dataset` queue task
    /// (inline when no queue is reachable).
    pub async fn delete_dataset(
        &self,
        dataset: &Dataset,
        jobs: Option<&JobStore>,
    ) -> Result<(), DatasetsError> {
        let files = repo::dataset_upload_files(self.db, dataset.id).await?;
        if !dataset_repo::delete_dataset(self.db, dataset.tenant_id, dataset.id).await? {
            return Err(DatasetsError::NotFound);
        }
        if files.is_empty() {
            return Ok(());
        }
        let args = CleanArgs { dataset_id: dataset.id, upload_file_ids: files.clone() };
        let queued = match (jobs, serde_json::to_vec(&args)) {
            (Some(jobs), Ok(payload)) => {
                jobs.push(&[JobSpec::new(indexing::QUEUE, cleanup::TASK, payload)]).await.is_ok()
            }
            _ => false,
        };
        if !queued && let Err(error) = cleanup::remove_files(self.db, self.storage, &files).await {
            tracing::warn!(%error, dataset = %dataset.id, "stored files not deleted; the orphan sweep will");
        }
        Ok(())
    }

    pub async fn get(&self, dataset_id: Uuid, id: Uuid) -> Result<Document, DatasetsError> {
        repo::find_document(self.db, dataset_id, id).await?.ok_or(DatasetsError::DocumentNotFound)
    }

    /// The detail JSON (`metadata=all|only|without`).
    pub async fn detail(&self, document: &Document, metadata: &str) -> Result<Value, DatasetsError> {
        let hits =
            repo::documents_hits(self.db, &[document.id]).await?.get(&document.id).copied().unwrap_or(0);
        let (_, segments) = repo::segment_counts(self.db, document.id).await?;
        let rule = match document.dataset_process_rule_id {
            Some(id) => repo::find_process_rule(self.db, id).await?.map_or(Value::Null, |r| {
                json!({"mode": r.mode, "rules": r.rules.as_deref().and_then(|x| serde_json::from_str::<Value>(x).ok())})
            }),
            None => Value::Null,
        };
        let mut body = document.detail_json(hits, segments, rule);
        match metadata {
            "all" => {}
            "only" => {
                body = json!({"id": document.id, "doc_type": document.doc_type, "doc_metadata": body["doc_metadata"]});
            }
            "without" => {
                if let Some(map) = body.as_object_mut() {
                    map.remove("doc_type");
                    map.remove("doc_metadata");
                }
            }
            _ => return Err(DatasetsError::InvalidMetadata),
        }
        Ok(body)
    }

    pub async fn list(
        &self,
        dataset_id: Uuid,
        keyword: Option<&str>,
        page: u32,
        limit: u32,
    ) -> Result<(Vec<Value>, i64), DatasetsError> {
        let keyword = keyword.map(str::trim).filter(|k| !k.is_empty());
        let (documents, total) = repo::list_documents(self.db, dataset_id, keyword, page, limit).await?;
        let ids: Vec<Uuid> = documents.iter().map(|d| d.id).collect();
        let hits = repo::documents_hits(self.db, &ids).await?;
        let out = documents.iter().map(|d| d.json(hits.get(&d.id).copied().unwrap_or(0))).collect();
        Ok((out, total))
    }

    /// Updates a document by new text or a new file and/or a new process rule, then indexes
    /// it again (a rename alone does not). The old file is deleted once replaced.
    pub async fn update(
        &self,
        dataset: &Dataset,
        id: Uuid,
        account_id: Uuid,
        new_file: Option<(String, Vec<u8>)>,
        request: CreateByText,
        jobs: Option<&JobStore>,
    ) -> Result<Document, DatasetsError> {
        let document = self.get(dataset.id, id).await?;
        if document.archived {
            return Err(DatasetsError::ArchivedImmutable);
        }
        if matches!(document.indexing_status.as_str(), "parsing" | "cleaning" | "splitting" | "indexing")
            && !document.is_paused
        {
            return Err(DatasetsError::DocumentIndexing);
        }
        let mut name = request.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        let upload = match (new_file, &request.text) {
            (Some((filename, bytes)), _) => Some(self.check_upload(&filename, bytes).await?),
            (None, Some(text)) => {
                let Some(name) = &name else {
                    return Err(invalid("name is required when text is given."));
                };
                if text.trim().is_empty() {
                    return Err(invalid("text is required."));
                }
                Some(Upload {
                    name: format!("{name}.txt"),
                    extension: "txt".into(),
                    bytes: text.clone().into_bytes(),
                })
            }
            (None, None) => None,
        };
        if let (Some(upload), None) = (&upload, &name) {
            name = Some(upload.name.clone());
        }
        let limit = self.settings.knowledge.indexing_max_segmentation_tokens_length.0;
        let rule = match &request.process_rule {
            Some(rule) if !rule.is_null() => {
                let (mode, rules) = indexing::check_process_rule(rule, limit).map_err(invalid)?;
                check_rule_fits(&document.doc_form, &mode)?;
                Some((mode, rules))
            }
            _ => None,
        };
        let reset = upload.is_some() || rule.is_some();
        let jobs = if reset {
            Some(jobs.ok_or_else(|| invalid("The job queue is not reachable yet; try again shortly."))?)
        } else {
            None
        };
        let now = Utc::now();
        let file = match upload {
            Some(upload) => Some(self.store_upload(dataset, account_id, upload, now).await?),
            None => None,
        };
        let rule_id = match rule {
            Some((mode, rules)) => Some(self.store_rule(dataset, &mode, &rules, account_id, now).await?),
            None => None,
        };
        let batch = if reset { new_batch()? } else { document.batch.clone() };
        let change = repo::Reindex {
            name: name.as_deref().unwrap_or(&document.name),
            upload_file_id: file.as_ref().map(|f| f.id),
            process_rule_id: rule_id,
            batch: &batch,
            reset,
        };
        repo::update_document(self.db, &document, &change, now).await?;
        if dataset.built_in_field_enabled {
            super::metadata::refresh_built_in(self.db, document.id, true).await?;
        }
        if let (Some(_), Some(old)) = (&file, document.upload_file_id)
            && let Err(error) = cleanup::remove_files(self.db, self.storage, &[old]).await
        {
            tracing::warn!(%error, "the replaced file was not deleted; the orphan sweep will");
        }
        if let Some(jobs) = jobs {
            queue_indexing(jobs, id).await?;
        }
        self.get(dataset.id, id).await
    }

    /// Dify's batch status actions: enable, disable, archive, un_archive (unknown ids are
    /// skipped, as Dify does).
    pub async fn set_status(
        &self,
        dataset_id: Uuid,
        action: &str,
        ids: &[String],
        by: Uuid,
    ) -> Result<(), DatasetsError> {
        let switch = match action {
            "enable" => repo::Switch::Enable,
            "disable" => repo::Switch::Disable,
            "archive" => repo::Switch::Archive,
            "un_archive" => repo::Switch::Unarchive,
            _ => return Err(DatasetsError::InvalidAction),
        };
        let now = Utc::now();
        for id in ids.iter().filter_map(|id| Uuid::parse_str(id).ok()) {
            repo::set_switch(self.db, dataset_id, id, switch, by, now).await?;
        }
        Ok(())
    }

    /// Pauses indexing: the worker stops at the next step, and the document keeps its state.
    pub async fn pause(&self, dataset_id: Uuid, id: Uuid, by: Uuid) -> Result<(), DatasetsError> {
        let document = self.get(dataset_id, id).await?;
        if matches!(document.indexing_status.as_str(), "completed" | "error") {
            return Err(DatasetsError::DocumentAlreadyFinished);
        }
        repo::set_switch(self.db, dataset_id, id, repo::Switch::Pause, by, Utc::now()).await?;
        Ok(())
    }

    /// Resumes a paused document: indexing starts again from the stored file.
    pub async fn resume(
        &self,
        dataset_id: Uuid,
        id: Uuid,
        by: Uuid,
        jobs: Option<&JobStore>,
    ) -> Result<(), DatasetsError> {
        let document = self.get(dataset_id, id).await?;
        if !document.is_paused {
            return Err(invalid("The document is not paused."));
        }
        let jobs = jobs.ok_or_else(|| invalid("The job queue is not reachable yet; try again shortly."))?;
        repo::set_switch(self.db, dataset_id, id, repo::Switch::Resume, by, Utc::now()).await?;
        queue_indexing(jobs, id).await
    }

    /// Deletes a document, its segments and index entries, and its stored file.
    pub async fn delete(&self, dataset_id: Uuid, id: Uuid) -> Result<(), DatasetsError> {
        let document = self.get(dataset_id, id).await?;
        if matches!(document.indexing_status.as_str(), "parsing" | "cleaning" | "splitting" | "indexing")
            && !document.is_paused
        {
            return Err(DatasetsError::DocumentIndexing);
        }
        repo::delete_document(self.db, dataset_id, id).await?;
        if let Some(file_id) = document.upload_file_id
            && let Some(file) = repo::find_upload_file(self.db, file_id).await?
        {
            if let Err(error) = self.storage.operator().delete(&file.storage_key).await {
                tracing::warn!(%error, key = file.storage_key, "stored file not deleted; the orphan sweep will");
            }
            repo::delete_upload_file(self.db, file_id).await?;
        }
        Ok(())
    }

    /// The documents of a batch, in Dify's indexing-status shape.
    pub async fn batch_status(&self, dataset_id: Uuid, batch: &str) -> Result<Vec<Value>, DatasetsError> {
        let documents = repo::documents_in_batch(self.db, dataset_id, batch).await?;
        if documents.is_empty() {
            return Err(DatasetsError::DocumentNotFound);
        }
        let mut out = Vec::with_capacity(documents.len());
        for document in &documents {
            let (completed, total) = repo::segment_counts(self.db, document.id).await?;
            out.push(document.status_json(completed, total));
        }
        Ok(out)
    }
}
