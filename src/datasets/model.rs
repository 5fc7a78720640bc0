//! Dataset (knowledge base) and dataset API key records, and their JSON in Dify's shapes.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// A knowledge base.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Dataset {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: String,
    pub provider: String,
    pub permission: String,
    pub data_source_type: Option<String>,
    pub indexing_technique: Option<String>,
    pub retrieval_model: Option<String>,
    pub embedding_model: Option<String>,
    pub embedding_model_provider: Option<String>,
    pub doc_form: Option<String>,
    pub enable_api: bool,
    pub built_in_field_enabled: bool,
    pub created_by: Uuid,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`Dataset`], for SELECT lists.
pub const DATASET_COLUMNS: &str = "id, tenant_id, name, description, provider, permission, data_source_type, \
     indexing_technique, retrieval_model, embedding_model, embedding_model_provider, doc_form, enable_api, \
     built_in_field_enabled, created_by, updated_by, created_at, updated_at";

/// Dify's default retrieval settings for a new dataset.
pub fn default_retrieval_model(indexing_technique: Option<&str>) -> Value {
    let search_method =
        if indexing_technique == Some("economy") { "keyword_search" } else { "semantic_search" };
    json!({
        "search_method": search_method,
        "reranking_enable": false,
        "reranking_mode": null,
        "reranking_model": {"reranking_provider_name": "", "reranking_model_name": ""},
        "weights": null,
        "top_k": 2,
        "score_threshold_enabled": false,
        "score_threshold": null,
    })
}

/// A dataset's document figures, shown in its detail.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct DocumentFigures {
    pub document_count: i64,
    pub word_count: i64,
    pub available_document_count: i64,
}

/// Dify's `DatasetDetail`, borrowed from the row: the list endpoint serialises a page of
/// these straight to the response, with no intermediate JSON tree.
#[derive(Debug, Serialize)]
pub struct DatasetDetail<'a> {
    id: Uuid,
    name: &'a str,
    description: &'a str,
    provider: &'a str,
    permission: &'a str,
    data_source_type: Option<&'a str>,
    indexing_technique: Option<&'a str>,
    app_count: u8,
    document_count: i64,
    word_count: i64,
    created_by: Uuid,
    author_name: Option<&'a str>,
    created_at: i64,
    updated_by: Option<Uuid>,
    updated_at: i64,
    embedding_model: Option<&'a str>,
    embedding_model_provider: Option<&'a str>,
    embedding_available: bool,
    retrieval_model_dict: Value,
    summary_index_setting: &'static Value,
    tags: &'a [Value],
    doc_form: Option<&'a str>,
    external_knowledge_info: &'static Value,
    external_retrieval_model: &'static Value,
    doc_metadata: [(); 0],
    built_in_field_enabled: bool,
    pipeline_id: Option<()>,
    runtime_mode: &'static str,
    chunk_structure: Option<()>,
    icon_info: &'static Value,
    is_published: bool,
    total_documents: i64,
    total_available_documents: i64,
    enable_api: bool,
    is_multimodal: bool,
}

/// Parts of Dify's `DatasetDetail` for features kiln does not have: always these values.
static SUMMARY_INDEX_SETTING: LazyLock<Value> = LazyLock::new(
    || json!({"enable": false, "model_name": null, "model_provider_name": null, "summary_prompt": null}),
);
static EXTERNAL_KNOWLEDGE_INFO: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "external_knowledge_id": null,
        "external_knowledge_api_id": null,
        "external_knowledge_api_name": null,
        "external_knowledge_api_endpoint": null,
    })
});
static EXTERNAL_RETRIEVAL_MODEL: LazyLock<Value> =
    LazyLock::new(|| json!({"top_k": 2, "score_threshold": 0.0, "score_threshold_enabled": false}));
static ICON_INFO: LazyLock<Value> =
    LazyLock::new(|| json!({"icon": null, "icon_background": null, "icon_type": null, "icon_url": null}));

impl Dataset {
    /// The retrieval settings, with Dify's rule that economy datasets search by keyword.
    pub fn retrieval_model_dict(&self) -> Value {
        let mut model = self
            .retrieval_model
            .as_deref()
            .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| default_retrieval_model(self.indexing_technique.as_deref()));
        if self.indexing_technique.as_deref() == Some("economy") {
            model["search_method"] = json!("keyword_search");
        }
        model
    }

    /// Dify's `DatasetDetail` of this dataset.
    pub fn detail<'a>(
        &'a self,
        author_name: Option<&'a str>,
        figures: DocumentFigures,
        tags: &'a [Value],
    ) -> DatasetDetail<'a> {
        DatasetDetail {
            id: self.id,
            name: &self.name,
            description: &self.description,
            provider: &self.provider,
            permission: &self.permission,
            data_source_type: self.data_source_type.as_deref(),
            indexing_technique: self.indexing_technique.as_deref(),
            app_count: 0,
            document_count: figures.document_count,
            word_count: figures.word_count,
            created_by: self.created_by,
            author_name,
            created_at: self.created_at.timestamp(),
            updated_by: self.updated_by,
            updated_at: self.updated_at.timestamp(),
            embedding_model: self.embedding_model.as_deref(),
            embedding_model_provider: self.embedding_model_provider.as_deref(),
            embedding_available: self.indexing_technique.as_deref() != Some("high_quality"),
            retrieval_model_dict: self.retrieval_model_dict(),
            summary_index_setting: &SUMMARY_INDEX_SETTING,
            tags,
            doc_form: self.doc_form.as_deref(),
            external_knowledge_info: &EXTERNAL_KNOWLEDGE_INFO,
            external_retrieval_model: &EXTERNAL_RETRIEVAL_MODEL,
            doc_metadata: [],
            built_in_field_enabled: self.built_in_field_enabled,
            pipeline_id: None,
            runtime_mode: "general",
            chunk_structure: None,
            icon_info: &ICON_INFO,
            is_published: false,
            total_documents: figures.document_count,
            total_available_documents: figures.available_document_count,
            enable_api: self.enable_api,
            is_multimodal: false,
        }
    }
}

/// A dataset API key as listed (the key itself is only known when it is created).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub token_hint: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiKey {
    /// Dify's api key fields; `token` is the full key right after creation, a hint after.
    pub fn json(&self, token: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "type": "dataset",
            "token": token.unwrap_or(&self.token_hint),
            "last_used_at": self.last_used_at.map(|t| t.timestamp()),
            "created_at": self.created_at.timestamp(),
        })
    }
}
