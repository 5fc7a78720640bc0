//! Dataset and dataset API key rules: who may do what, validation with Dify's messages, and
//! the key lookup that /v1 requests go through.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::{ApiKey, Dataset, DocumentFigures, default_retrieval_model};
use super::repo::{self, DatasetRow};
use crate::accounts::model::Membership;
use crate::accounts::repo::RepoError;
use crate::infra::db::Db;

/// Dify's limit of API keys per tenant and type.
pub const MAX_API_KEYS: i64 = 10;
/// How long a verified key is trusted without asking the database again (per process); a
/// deleted key also stops working at once in the process that deleted it.
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Why a dataset operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DatasetsError {
    #[error("Dataset not found.")]
    NotFound,
    #[error("Document not found.")]
    DocumentNotFound,
    #[error("Invalid action.")]
    InvalidAction,
    #[error("The archived document is not editable.")]
    ArchivedImmutable,
    #[error("The document has been processed. Please refresh the page or go to the document details.")]
    DocumentAlreadyFinished,
    #[error("Please upload your file.")]
    NoFileUploaded,
    #[error("Only one file is allowed.")]
    TooManyFiles,
    #[error("The specified filename does not exist.")]
    FilenameMissing,
    #[error("File size exceeded. {0}")]
    FileTooLarge(String),
    #[error("File type not allowed. {0}")]
    UnsupportedFileType(String),
    #[error("The file extension is blocked for security reasons.")]
    ExtensionBlocked,
    #[error("Invalid metadata value: use all, only or without.")]
    InvalidMetadata,
    #[error("The document is being processed and cannot be deleted now.")]
    DocumentIndexing,
    #[error("The dataset name already exists. Please modify your dataset name.")]
    NameDuplicate,
    #[error("{0}")]
    InvalidParam(String),
    #[error(
        "No Embedding Model available. Please configure a valid provider in the Settings -> Model Provider."
    )]
    ProviderNotInitialized,
    /// qa_model documents need a chat model to write their questions and answers.
    #[error(
        "No LLM model available to generate Q&A pairs. Please configure a valid provider in the Settings -> Model Provider."
    )]
    LlmNotInitialized,
    #[error("You do not have permission to do this.")]
    Forbidden,
    #[error("Cannot create more than {MAX_API_KEYS} API keys for this resource type.")]
    TooManyKeys,
    #[error("API key not found.")]
    KeyNotFound,
    #[error("Dataset api access is not enabled.")]
    ApiDisabled,
    #[error("Access token is invalid")]
    InvalidKey,
    #[error("Tenant does not exist.")]
    TenantGone,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// The tenant a /v1 key belongs to, and the owner the request acts as.
#[derive(Debug, Clone, Copy)]
pub struct KeyScope {
    pub key_id: Uuid,
    pub tenant_id: Uuid,
    pub owner_id: Uuid,
}

/// Verified keys by hash, so a busy client does not cost a database lookup per request.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (KeyScope, Instant)>>,
}

impl KeyCache {
    fn get(&self, hash: &str) -> Option<KeyScope> {
        let entries = self.entries.lock().ok()?;
        entries.get(hash).filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL).map(|(scope, _)| *scope)
    }

    fn put(&self, hash: String, scope: KeyScope) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                entries.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
            }
            entries.insert(hash, (scope, Instant::now()));
        }
    }

    fn forget_key(&self, key_id: Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (scope, _)| scope.key_id != key_id);
        }
    }
}

fn hash_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `dataset-` and 24 random letters and digits, as Dify makes them.
fn new_key() -> Result<String, DatasetsError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| DatasetsError::InvalidParam(e.to_string()))?;
    // 256 is a multiple of 62's neighbourhood only roughly; the bias (4/256) is harmless for
    // a 143-bit key.
    let body: String = bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
    Ok(format!("dataset-{body}"))
}

/// Fields of a dataset create request (Dify's names).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct CreateDataset {
    /// 1 to 40 characters, unique in the workspace.
    #[schema(required = true)]
    pub name: Option<String>,
    /// At most 400 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// `economy`; `high_quality` needs an embedding provider (400 `provider_not_initialize`).
    #[serde(default)]
    pub indexing_technique: Option<String>,
    /// `only_me` (default), `all_team_members` or `partial_members`.
    #[serde(default)]
    pub permission: Option<String>,
    /// `vendor` (default); `external` is refused.
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub retrieval_model: Option<Value>,
    #[serde(default)]
    pub embedding_model: Option<String>,
    #[serde(default)]
    pub embedding_model_provider: Option<String>,
}

/// Fields of a dataset update; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct UpdateDataset {
    pub name: Option<String>,
    pub description: Option<String>,
    pub indexing_technique: Option<String>,
    pub permission: Option<String>,
    pub retrieval_model: Option<Value>,
    pub embedding_model: Option<String>,
    pub embedding_model_provider: Option<String>,
}

fn check_name(name: &str) -> Result<String, DatasetsError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 40 {
        return Err(DatasetsError::InvalidParam("Name must be between 1 to 40 characters.".into()));
    }
    Ok(name.to_owned())
}

fn check_description(description: &str) -> Result<(), DatasetsError> {
    if description.chars().count() > 400 {
        return Err(DatasetsError::InvalidParam("Description cannot exceed 400 characters.".into()));
    }
    Ok(())
}

fn check_technique(technique: Option<&str>) -> Result<(), DatasetsError> {
    match technique {
        None | Some("economy") => Ok(()),
        // Embedding providers arrive with the vector-store work; until then, as Dify answers
        // when no embedding model is configured.
        Some("high_quality") => Err(DatasetsError::ProviderNotInitialized),
        Some(_) => Err(DatasetsError::InvalidParam("Invalid indexing technique.".into())),
    }
}

fn check_permission(permission: &str) -> Result<(), DatasetsError> {
    match permission {
        "only_me" | "all_team_members" | "partial_members" => Ok(()),
        _ => Err(DatasetsError::InvalidParam("Invalid permission.".into())),
    }
}

fn check_retrieval_model(model: &Value) -> Result<String, DatasetsError> {
    let method = model.get("search_method").and_then(Value::as_str);
    match method {
        Some("semantic_search" | "full_text_search" | "hybrid_search" | "keyword_search") | None
            if model.is_object() =>
        {
            Ok(model.to_string())
        }
        _ => Err(DatasetsError::InvalidParam("retrieval_model.search_method is invalid.".into())),
    }
}

fn map_duplicate(error: RepoError) -> DatasetsError {
    match error {
        RepoError::Duplicate(_) => DatasetsError::NameDuplicate,
        other => DatasetsError::Repo(other),
    }
}

/// Dataset operations for one database.
pub struct Datasets<'a> {
    pub db: &'a Db,
}

impl Datasets<'_> {
    /// Creates a key; only owners and admins may. Returns the row and the full key, which is
    /// never shown again.
    pub async fn create_key(&self, membership: &Membership) -> Result<(ApiKey, String), DatasetsError> {
        if !membership.role.is_privileged() {
            return Err(DatasetsError::Forbidden);
        }
        if repo::count_api_keys(self.db, membership.tenant.id).await? >= MAX_API_KEYS {
            return Err(DatasetsError::TooManyKeys);
        }
        let token = new_key()?;
        // The key is `dataset-` and 24 ASCII letters or digits, so these byte slices are whole.
        let hint = format!("{}…{}", &token[..10], &token[token.len() - 4..]);
        let key = ApiKey {
            id: Uuid::new_v4(),
            tenant_id: membership.tenant.id,
            token_hint: hint,
            last_used_at: None,
            created_at: Utc::now(),
        };
        repo::insert_api_key(self.db, &key, &hash_key(&token)).await?;
        Ok((key, token))
    }

    pub async fn list_keys(&self, membership: &Membership) -> Result<Vec<ApiKey>, DatasetsError> {
        Ok(repo::list_api_keys(self.db, membership.tenant.id).await?)
    }

    pub async fn delete_key(
        &self,
        membership: &Membership,
        id: Uuid,
        cache: &KeyCache,
    ) -> Result<(), DatasetsError> {
        if !membership.role.is_privileged() {
            return Err(DatasetsError::Forbidden);
        }
        if !repo::delete_api_key(self.db, membership.tenant.id, id).await? {
            return Err(DatasetsError::KeyNotFound);
        }
        cache.forget_key(id);
        Ok(())
    }

    /// Resolves a presented key; `last_used_at` is written when the key is (re)loaded into
    /// the cache, so at most once per key per cache lifetime, not on every request.
    pub async fn authenticate_key(&self, token: &str, cache: &KeyCache) -> Result<KeyScope, DatasetsError> {
        let hash = hash_key(token);
        if let Some(scope) = cache.get(&hash) {
            return Ok(scope);
        }
        let key = repo::find_api_key_by_hash(self.db, &hash).await?.ok_or(DatasetsError::InvalidKey)?;
        let owner_id = repo::tenant_owner(self.db, key.tenant_id).await?.ok_or(DatasetsError::TenantGone)?;
        repo::touch_api_key(self.db, key.id, Utc::now()).await?;
        let scope = KeyScope { key_id: key.id, tenant_id: key.tenant_id, owner_id };
        cache.put(hash, scope);
        Ok(scope)
    }

    pub async fn create(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
        request: CreateDataset,
    ) -> Result<DatasetRow, DatasetsError> {
        let name = check_name(request.name.as_deref().unwrap_or_default())?;
        let description = request.description.unwrap_or_default();
        check_description(&description)?;
        check_technique(request.indexing_technique.as_deref())?;
        let permission = request.permission.unwrap_or_else(|| "only_me".into());
        check_permission(&permission)?;
        if request.provider.as_deref().is_some_and(|p| p != "vendor") {
            return Err(DatasetsError::InvalidParam("External datasets are not supported.".into()));
        }
        let retrieval_model = match &request.retrieval_model {
            Some(model) if !model.is_null() => check_retrieval_model(model)?,
            _ => default_retrieval_model(request.indexing_technique.as_deref()).to_string(),
        };
        let now = Utc::now();
        let dataset = Dataset {
            id: Uuid::new_v4(),
            tenant_id,
            name,
            description,
            provider: "vendor".into(),
            permission,
            data_source_type: None,
            indexing_technique: request.indexing_technique,
            retrieval_model: Some(retrieval_model),
            embedding_model: request.embedding_model,
            embedding_model_provider: request.embedding_model_provider,
            doc_form: None,
            enable_api: true,
            built_in_field_enabled: false,
            created_by: account_id,
            updated_by: None,
            created_at: now,
            updated_at: now,
        };
        repo::insert_dataset(self.db, &dataset).await.map_err(map_duplicate)?;
        self.get(tenant_id, dataset.id).await
    }

    pub async fn get(&self, tenant_id: Uuid, id: Uuid) -> Result<DatasetRow, DatasetsError> {
        repo::find_dataset(self.db, tenant_id, id).await?.ok_or(DatasetsError::NotFound)
    }

    /// A dataset that /v1 may use: this tenant's, with API access on.
    pub async fn get_for_api(&self, tenant_id: Uuid, id: Uuid) -> Result<DatasetRow, DatasetsError> {
        let row = self.get(tenant_id, id).await?;
        if !row.dataset.enable_api {
            return Err(DatasetsError::ApiDisabled);
        }
        Ok(row)
    }

    pub async fn list(
        &self,
        tenant_id: Uuid,
        keyword: Option<&str>,
        tag_ids: Option<&[Uuid]>,
        page: u32,
        limit: u32,
    ) -> Result<(Vec<(DatasetRow, DocumentFigures)>, i64), DatasetsError> {
        let keyword = keyword.map(str::trim).filter(|k| !k.is_empty());
        Ok(repo::list_datasets(self.db, tenant_id, keyword, tag_ids, page, limit).await?)
    }

    pub async fn update(
        &self,
        tenant_id: Uuid,
        account_id: Uuid,
        id: Uuid,
        request: UpdateDataset,
    ) -> Result<DatasetRow, DatasetsError> {
        let mut dataset = self.get(tenant_id, id).await?.dataset;
        if let Some(name) = request.name {
            dataset.name = check_name(&name)?;
        }
        if let Some(description) = request.description {
            check_description(&description)?;
            dataset.description = description;
        }
        if let Some(technique) = request.indexing_technique {
            check_technique(Some(&technique))?;
            dataset.indexing_technique = Some(technique);
        }
        if let Some(permission) = request.permission {
            check_permission(&permission)?;
            dataset.permission = permission;
        }
        if let Some(model) = request.retrieval_model.filter(|m| !m.is_null()) {
            dataset.retrieval_model = Some(check_retrieval_model(&model)?);
        }
        if request.embedding_model.is_some() {
            dataset.embedding_model = request.embedding_model;
        }
        if request.embedding_model_provider.is_some() {
            dataset.embedding_model_provider = request.embedding_model_provider;
        }
        dataset.updated_by = Some(account_id);
        dataset.updated_at = Utc::now();
        repo::update_dataset(self.db, &dataset).await.map_err(map_duplicate)?;
        self.get(tenant_id, id).await
    }

    /// Turns /v1 access to a dataset on or off (console, owners and admins).
    pub async fn set_api_access(
        &self,
        membership: &Membership,
        id: Uuid,
        enabled: bool,
    ) -> Result<(), DatasetsError> {
        if !membership.role.is_privileged() {
            return Err(DatasetsError::Forbidden);
        }
        let mut dataset = self.get(membership.tenant.id, id).await?.dataset;
        dataset.enable_api = enabled;
        dataset.updated_at = Utc::now();
        repo::update_dataset(self.db, &dataset).await?;
        Ok(())
    }
}
