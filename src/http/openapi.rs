//! The OpenAPI document: generated from the handlers' `#[utoipa::path]` annotations as the
//! routers are built (utoipa-axum registers each route from its annotation, so a route
//! cannot exist without its entry), then served at `/openapi.json` with a docs page at
//! `/docs`.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::response::Html;
use serde::Serialize;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, ToSchema};
use utoipa_scalar::Scalar;

/// Every error, as Dify's `external_api` shapes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A snake_case code, such as `invalid_param`, `not_found` or `dataset_name_duplicate`.
    pub code: String,
    pub message: String,
    /// The HTTP status again.
    pub status: u16,
    /// The field a validation error is about, when there is one.
    #[schema(nullable = false)]
    pub params: Option<String>,
}

/// The errors any Knowledge API call may answer.
#[derive(IntoResponses)]
pub enum ServiceErrors {
    /// Bad input (`invalid_param` and Dify's specific codes).
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// A missing, malformed or unknown dataset API key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// API access is disabled for the dataset, or the action is not allowed.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The dataset (or what the path names in it) is not this key's tenant's.
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// The errors any console call may answer.
#[derive(IntoResponses)]
pub enum ConsoleErrors {
    /// Bad input.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// Not signed in, or the token expired.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Signed in without the needed role, or a CSRF token missing.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// `{"result": "success"}`, Dify's acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Success {
    #[schema(example = "success")]
    pub result: String,
}

/// The security scheme names handlers refer to.
pub const DATASET_KEY: &str = "dataset_api_key";
pub const CONSOLE: &str = "console_token";

/// Completes a generated document: title, version, and the two ways to authenticate.
pub fn finish(mut api: OpenApi) -> OpenApi {
    api.info.title = "kiln".into();
    api.info.version = crate::VERSION.into();
    api.info.description = Some(
        "kiln's HTTP API: Dify's Knowledge (dataset) Service API under /v1, authenticated with a \
         dataset API key (`Authorization: Bearer dataset-…`), and the console API under \
         /console/api (a console access token as a Bearer token or the access_token cookie, with \
         the X-CSRF-Token header)."
            .into(),
    );
    unique_operation_ids(&mut api);
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        DATASET_KEY,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A dataset API key: `dataset-` and 24 characters."))
                .build(),
        ),
    );
    components.add_security_scheme(
        CONSOLE,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "access_token",
            "The console access token (also accepted as `Authorization: Bearer …`).",
        ))),
    );
    api
}

/// `/openapi.json` and the docs page `/docs` (Scalar, with the document inlined) for a
/// finished document. Both are rendered on first request, so start-up does not pay for them.
pub fn routes<S: Clone + Send + Sync + 'static>(api: OpenApi) -> axum::Router<S> {
    let api = Arc::new(api);
    let json = Arc::new(OnceLock::<serde_json::Value>::new());
    let page = Arc::new(OnceLock::<String>::new());
    let for_page = api.clone();
    axum::Router::new()
        .route(
            "/openapi.json",
            axum::routing::get(move || async move {
                Json(json.get_or_init(|| serde_json::to_value(&*api).unwrap_or_default()).clone())
            }),
        )
        .route(
            "/docs",
            axum::routing::get(move || async move {
                Html(page.get_or_init(|| Scalar::new((*for_page).clone()).to_html()).clone())
            }),
        )
}

/// Operation ids default to handler names, which repeat across features (`list`, `create`);
/// a repeated one becomes `{method}_{path}` (e.g. `get_v1_datasets_id_documents`), so
/// client generators get one name per operation.
fn unique_operation_ids(api: &mut OpenApi) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in api.paths.paths.values() {
        for operation in operations(item) {
            if let Some(id) = &operation.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    let mut taken: std::collections::HashSet<String> =
        seen.iter().filter(|(_, n)| **n == 1).map(|(id, _)| id.clone()).collect();
    for (path, item) in api.paths.paths.iter_mut() {
        let slug: String = path
            .chars()
            .filter(|c| !matches!(c, '{' | '}'))
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        for (method, operation) in operations_mut(item) {
            let repeated = operation.operation_id.as_ref().is_none_or(|id| seen.get(id).copied() != Some(1));
            if !repeated {
                continue;
            }
            let mut id = format!("{method}{slug}");
            // `create-by-text` and its alias `create_by_text` make the same slug.
            if operation.deprecated == Some(utoipa::openapi::Deprecated::True) {
                id.push_str("_deprecated");
            }
            while !taken.insert(id.clone()) {
                id.push_str("_2");
            }
            operation.operation_id = Some(id);
        }
    }
}

fn operations(item: &utoipa::openapi::PathItem) -> impl Iterator<Item = &utoipa::openapi::path::Operation> {
    [&item.get, &item.put, &item.post, &item.delete, &item.patch].into_iter().flatten()
}

fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("patch", &mut item.patch),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|o| (method, o)))
}
