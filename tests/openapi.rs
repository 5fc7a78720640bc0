//! The OpenAPI document against the real binary: every operation in it is a route the
//! server answers (not its 404/405 fallback), it is well formed (unique operation ids,
//! declared path parameters), and real responses of a Knowledge API session validate
//! against the schemas it gives for them. It also drives the tenant-isolation check over
//! every `/v1` operation.

mod common;

use common::knowledge::{Stack, new_key, wait_indexed};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn spec(stack: &Stack) -> Value {
    let response = common::get(format!("{}/openapi.json", stack.url)).await.expect("openapi.json");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// Checks `body` against the schema the spec gives for `method path` answering `status`.
fn check(spec: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let errors = violations(spec, method, path, status, body);
    assert!(errors.is_empty(), "{method} {path} {status}: {errors:#?}\nbody: {body}");
}

/// What is wrong with `body` as the answer `status` of `method path`, by the spec.
fn violations(spec: &Value, method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    let operation = &spec["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not in the spec");
    let schema = &operation["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} has no JSON schema for {status}");
    let mut root = schema.clone();
    root["components"] = spec["components"].clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    let validator = jsonschema::validator_for(&root).expect("a valid JSON schema");
    validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_served_and_well_formed() {
    let stack = Stack::start(None).await;
    let spec = spec(&stack).await;
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 55, "{} paths", paths.len());
    let mut ids = std::collections::HashSet::new();
    let mut count = 0;
    for (path, item) in paths {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            count += 1;
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "operationId {id} repeats");
            assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            // Each `{name}` of the template is declared once, as a required path parameter.
            let declared: Vec<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let template: Vec<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
            let mut sorted = declared.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), declared.len(), "{method} {path} declares a parameter twice");
            let mut expected = template.clone();
            expected.sort_unstable();
            assert_eq!(sorted, expected, "{method} {path}");

            // The server routes it: whatever it answers without credentials, it is not the
            // fallback's 404 or a 405.
            let concrete: String = path
                .split('/')
                .map(|s| if s.starts_with('{') { "0b2c8a3e-59a4-4bde-a6c3-1f0e5d7c9a11" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let response = common::http()
                .request(method.to_uppercase().parse().expect("method"), format!("{}{concrete}", stack.url))
                .json(&json!({}))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let fallback = status == 405
                || (status == 404
                    && body["message"].as_str().is_some_and(|m| m.starts_with("The requested URL")));
            assert!(!fallback, "{method} {path} is not routed: {status} {body}");
        }
    }
    assert!(count >= 80, "{count} operations");
    let docs = common::get(format!("{}/docs", stack.url)).await.expect("docs");
    assert_eq!(docs.status(), 200);
    let page = docs.text().await.expect("page");
    assert!(
        page.contains("<html") && page.contains("/v1/datasets/{id}/retrieve"),
        "the docs page inlines the spec"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_api_responses_match_the_spec() {
    let stack = Stack::start(None).await;
    let spec = spec(&stack).await;
    let mut owner = stack.owner().await;
    let (status, keys) = owner.get("/console/api/datasets/api-keys").await;
    check(&spec, "get", "/console/api/datasets/api-keys", status, &keys);
    let (status, created) = owner.post("/console/api/datasets/api-keys", json!({})).await;
    check(&spec, "post", "/console/api/datasets/api-keys", status, &created);
    let key = new_key(&mut owner).await;
    let v1 = |method: Method, path: String, body: Option<Value>| {
        let key = key.clone();
        let stack = &stack;
        async move { stack.v1(method, &path, Some(&key), body).await }
    };

    let (status, dataset) = v1(Method::POST, "/datasets".into(), Some(json!({"name": "Spec"}))).await;
    check(&spec, "post", "/v1/datasets", status, &dataset);
    let ds = dataset["id"].as_str().expect("id").to_owned();
    let (status, tag) = v1(Method::POST, "/datasets/tags".into(), Some(json!({"name": "manuals"}))).await;
    check(&spec, "post", "/v1/datasets/tags", status, &tag);
    let binding = json!({"tag_ids": [tag["id"]], "target_id": ds});
    assert_eq!(v1(Method::POST, "/datasets/tags/binding".into(), Some(binding)).await.0, 204);
    let (status, tags) = v1(Method::GET, "/datasets/tags".into(), None).await;
    check(&spec, "get", "/v1/datasets/tags", status, &tags);
    let (status, tags) = v1(Method::GET, format!("/datasets/{ds}/tags"), None).await;
    check(&spec, "get", "/v1/datasets/{id}/tags", status, &tags);
    let (status, field) = v1(
        Method::POST,
        format!("/datasets/{ds}/metadata"),
        Some(json!({"type": "string", "name": "author"})),
    )
    .await;
    check(&spec, "post", "/v1/datasets/{id}/metadata", status, &field);

    let rule = json!({"mode": "hierarchical", "rules": {"segmentation": {"separator": "\n\n", "max_tokens": 200},
        "parent_mode": "paragraph", "subchunk_segmentation": {"separator": "\n", "max_tokens": 50}}});
    let body = json!({"name": "Guide", "text": "Kettles boil water.\nTeapots steep leaves.\n\nCups hold tea.",
                      "indexing_technique": "economy", "process_rule": rule});
    let (status, created) =
        v1(Method::POST, format!("/datasets/{ds}/document/create-by-text"), Some(body)).await;
    check(&spec, "post", "/v1/datasets/{id}/document/create-by-text", status, &created);
    let batch = created["batch"].as_str().expect("batch").to_owned();
    let doc = created["document"]["id"].as_str().expect("document").to_owned();
    let statuses = wait_indexed(&stack, &key, &ds, &batch).await;
    check(&spec, "get", "/v1/datasets/{id}/documents/{batch}/indexing-status", 200, &statuses);
    let values = json!({"operation_data": [{"document_id": doc, "metadata_list": [{"id": field["id"], "name": "author", "value": "Ann"}]}]});
    assert_eq!(v1(Method::POST, format!("/datasets/{ds}/documents/metadata"), Some(values)).await.0, 200);

    for (path, template) in [
        ("/datasets".to_owned(), "/v1/datasets"),
        (format!("/datasets/{ds}"), "/v1/datasets/{id}"),
        (format!("/datasets/{ds}/documents"), "/v1/datasets/{id}/documents"),
        (format!("/datasets/{ds}/documents/{doc}"), "/v1/datasets/{id}/documents/{document}"),
        (
            format!("/datasets/{ds}/documents/{doc}/segments"),
            "/v1/datasets/{id}/documents/{document}/segments",
        ),
        (
            format!("/datasets/{ds}/documents/{doc}/download"),
            "/v1/datasets/{id}/documents/{document}/download",
        ),
        (format!("/datasets/{ds}/metadata"), "/v1/datasets/{id}/metadata"),
        (format!("/datasets/{ds}/metadata/built-in"), "/v1/datasets/{id}/metadata/built-in"),
    ] {
        let (status, body) = v1(Method::GET, path, None).await;
        check(&spec, "get", template, status, &body);
    }
    let (_, segments) = v1(Method::GET, format!("/datasets/{ds}/documents/{doc}/segments"), None).await;
    let seg = segments["data"][0]["id"].as_str().expect("segment").to_owned();
    let segment_path = "/v1/datasets/{id}/documents/{document}/segments/{segment}";
    let (status, one) = v1(Method::GET, format!("/datasets/{ds}/documents/{doc}/segments/{seg}"), None).await;
    check(&spec, "get", segment_path, status, &one);
    let change = json!({"segment": {"content": "Kettles boil water fast.\nTeapots steep leaves.", "regenerate_child_chunks": true}});
    let (status, updated) =
        v1(Method::POST, format!("/datasets/{ds}/documents/{doc}/segments/{seg}"), Some(change)).await;
    check(&spec, "post", segment_path, status, &updated);
    let add = json!({"segments": [{"content": "Saucers catch drips."}]});
    let (status, added) =
        v1(Method::POST, format!("/datasets/{ds}/documents/{doc}/segments"), Some(add)).await;
    check(&spec, "post", "/v1/datasets/{id}/documents/{document}/segments", status, &added);
    let children = format!("/datasets/{ds}/documents/{doc}/segments/{seg}/child_chunks");
    let (status, child) = v1(Method::POST, children.clone(), Some(json!({"content": "Steam rises."}))).await;
    check(
        &spec,
        "post",
        "/v1/datasets/{id}/documents/{document}/segments/{segment}/child_chunks",
        status,
        &child,
    );
    let (status, list) = v1(Method::GET, children, None).await;
    check(
        &spec,
        "get",
        "/v1/datasets/{id}/documents/{document}/segments/{segment}/child_chunks",
        status,
        &list,
    );

    for method in ["keyword_search", "full_text_search"] {
        let query =
            json!({"query": "kettles steam", "retrieval_model": {"search_method": method, "top_k": 3}});
        let (status, found) = v1(Method::POST, format!("/datasets/{ds}/retrieve"), Some(query)).await;
        assert!(!found["records"].as_array().is_none_or(Vec::is_empty), "{method}: {found}");
        check(&spec, "post", "/v1/datasets/{id}/retrieve", status, &found);
    }

    // Errors have the documented envelope.
    let (status, missing) =
        v1(Method::GET, "/datasets/0b2c8a3e-59a4-4bde-a6c3-1f0e5d7c9a11".into(), None).await;
    check(&spec, "get", "/v1/datasets/{id}", status, &missing);
    let (status, bad) =
        v1(Method::POST, format!("/datasets/{ds}/retrieve"), Some(json!({"query": "q".repeat(251)}))).await;
    check(&spec, "post", "/v1/datasets/{id}/retrieve", status, &bad);
    let (status, unauthorized) = stack.v1(Method::GET, "/datasets", None, None).await;
    check(&spec, "get", "/v1/datasets", status, &unauthorized);

    // The check can fail: an error body is not a dataset, a dataset missing a field is not one.
    assert!(!violations(&spec, "get", "/v1/datasets/{id}", 200, &missing).is_empty());
    let mut partial = dataset.clone();
    partial.as_object_mut().expect("object").remove("indexing_technique");
    partial["document_count"] = json!("three");
    let errors = violations(&spec, "post", "/v1/datasets", 200, &partial);
    assert!(errors.iter().any(|e| e.contains("document_count")), "{errors:?}");
}

/// Every `/v1` operation, driven from the spec, with another workspace's key on this
/// workspace's real ids: 404 each time, and nothing of it changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workspace_reaches_nothing_on_any_v1_route() {
    let stack = Stack::start(None).await;
    let spec = spec(&stack).await;
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let mine = |method: Method, path: String, body: Option<Value>| {
        let key = key.clone();
        let stack = &stack;
        async move { stack.v1(method, &path, Some(&key), body).await }
    };
    let (_, dataset) = mine(Method::POST, "/datasets".into(), Some(json!({"name": "Private"}))).await;
    let ds = dataset["id"].as_str().expect("id").to_owned();
    let rule = json!({"mode": "hierarchical", "rules": {"segmentation": {"separator": "\n\n", "max_tokens": 200},
        "subchunk_segmentation": {"separator": "\n", "max_tokens": 50}}});
    let body = json!({"name": "Secret", "text": "Vault code lives here.\nSecond line.", "indexing_technique": "economy", "process_rule": rule});
    let (_, created) =
        mine(Method::POST, format!("/datasets/{ds}/document/create-by-text"), Some(body)).await;
    let doc = created["document"]["id"].as_str().expect("doc").to_owned();
    let batch = created["batch"].as_str().expect("batch").to_owned();
    wait_indexed(&stack, &key, &ds, &batch).await;
    let (_, segments) = mine(Method::GET, format!("/datasets/{ds}/documents/{doc}/segments"), None).await;
    let seg = segments["data"][0]["id"].as_str().expect("segment").to_owned();
    let child = segments["data"][0]["child_chunks"][0]["id"].as_str().expect("child").to_owned();
    let (_, field) = mine(
        Method::POST,
        format!("/datasets/{ds}/metadata"),
        Some(json!({"type": "string", "name": "owner"})),
    )
    .await;
    let field_id = field["id"].as_str().expect("field").to_owned();
    let (_, tag) = mine(Method::POST, "/datasets/tags".into(), Some(json!({"name": "private"}))).await;
    let tag_id = tag["id"].as_str().expect("tag").to_owned();

    let mut other = stack.other_owner().await;
    let other_key = new_key(&mut other).await;
    let body = json!({
        "name": "Taken", "text": "Overwritten", "content": "Overwritten", "query": "vault",
        "segment": {"content": "Overwritten"}, "segments": [{"content": "Overwritten"}],
        "document_ids": [doc], "type": "string", "tag_id": tag_id, "tag_ids": [tag_id], "target_id": ds,
        "operation_data": [{"document_id": doc, "metadata_list": [{"id": field_id, "name": "owner", "value": "them"}]}],
    });
    let mut tried = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        let Some(route) = path.strip_prefix("/v1") else { continue };
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            // Lists of the caller's own workspace are not about this workspace's data.
            if matches!((method, route), ("get" | "post", "/datasets") | ("get" | "post", "/datasets/tags")) {
                continue;
            }
            let concrete = route
                .replace("{id}", &ds)
                .replace("{document}", &doc)
                .replace("{batch}", &batch)
                .replace("{segment}", &seg)
                .replace("{child}", &child)
                .replace("{field}", &field_id)
                .replace("{action}", if route.contains("/status/") { "disable" } else { "enable" });
            let mut request = common::http()
                .request(
                    method.to_uppercase().parse().expect("method"),
                    format!("{}/v1{concrete}", stack.url),
                )
                .bearer_auth(&other_key);
            let multipart = operation["requestBody"]["content"].get("multipart/form-data").is_some();
            request = if multipart {
                let form = Form::new()
                    .part("file", Part::bytes(b"Overwritten".to_vec()).file_name("x.txt"))
                    .text("data", json!({"process_rule": {"mode": "automatic"}}).to_string());
                request.multipart(form)
            } else {
                request.json(&body)
            };
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (status, answer["code"].as_str()),
                (404, Some("not_found")),
                "{method} {path}: {answer}"
            );
            tried += 1;
        }
    }
    assert!(tried >= 40, "{tried} operations tried");

    // Nothing changed.
    let (status, detail) = mine(Method::GET, format!("/datasets/{ds}/documents/{doc}"), None).await;
    assert_eq!(
        (status, detail["name"].as_str(), detail["enabled"].as_bool()),
        (200, Some("Secret"), Some(true))
    );
    let (_, segment) =
        mine(Method::GET, format!("/datasets/{ds}/documents/{doc}/segments/{seg}"), None).await;
    assert_eq!(segment["data"]["content"], segments["data"][0]["content"]);
    assert_eq!(segment["data"]["child_chunks"].as_array().map(Vec::len), Some(2), "{segment}");
    let (_, tags) = mine(Method::GET, format!("/datasets/{ds}/tags"), None).await;
    assert_eq!(tags["total"], 0, "no tag was bound by the other workspace: {tags}");
    let (_, fields) = mine(Method::GET, format!("/datasets/{ds}/metadata"), None).await;
    assert_eq!(fields["doc_metadata"][0]["name"], "owner");
    let (_, theirs) = stack.v1(Method::GET, "/datasets", Some(&other_key), None).await;
    assert_eq!(theirs["total"], 0);
}
