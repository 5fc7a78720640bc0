//! The Knowledge API end to end through the real binary, twice: `standalone` (SQLite and
//! the embedded queue in one process) and the compose layout (PostgreSQL, Redis, an API
//! process and a separate worker). A key, a dataset, documents by text and by file (PDF,
//! DOCX), indexing to `completed`, a phrase retrieved from each, a segment edited and its
//! new text retrieved, then deletes that take the index and the stored files with them.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::knowledge::{Stack, compose, docx, new_key, pdf, v1, wait_indexed_at, walk, worker};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

async fn upload(url: &str, key: &str, ds: &str, name: &str, bytes: Vec<u8>) -> Value {
    let form = Form::new()
        .part("file", Part::bytes(bytes).file_name(name.to_owned()))
        .text("data", json!({"process_rule": {"mode": "automatic"}}).to_string());
    let response = common::http()
        .post(format!("{url}/v1/datasets/{ds}/document/create-by-file"))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// The first record's document name for `query`, if any.
async fn top_document(url: &str, key: &str, ds: &str, query: &str) -> Option<String> {
    let (status, found) =
        v1(url, Method::POST, &format!("/datasets/{ds}/retrieve"), Some(key), Some(json!({"query": query})))
            .await;
    assert_eq!(status, 200, "{found}");
    found["records"][0]["segment"]["document"]["name"].as_str().map(str::to_owned)
}

async fn flow(url: &str, key: &str, storage: &Path) {
    let uploads = storage.join("upload_files");
    let (status, dataset) = v1(
        url,
        Method::POST,
        "/datasets",
        Some(key),
        Some(json!({"name": "Handbook", "indexing_technique": "economy"})),
    )
    .await;
    assert_eq!(status, 200, "{dataset}");
    let ds = dataset["id"].as_str().expect("id").to_owned();

    let body =
        json!({"name": "Moorings", "text": "Boats moor at the north quay.\n\nThe tide turns at noon."});
    let (status, by_text) =
        v1(url, Method::POST, &format!("/datasets/{ds}/document/create-by-text"), Some(key), Some(body))
            .await;
    assert_eq!(status, 200, "{by_text}");
    let by_pdf = upload(url, key, &ds, "fees.pdf", pdf("Harbour fees are paid at the customs office")).await;
    let by_docx =
        upload(url, key, &ds, "keepers.docx", docx(&["Lighthouse keepers log the weather every evening"]))
            .await;
    for created in [&by_text, &by_pdf, &by_docx] {
        let status = wait_indexed_at(url, key, &ds, created["batch"].as_str().expect("batch")).await;
        let document = &status["data"][0];
        assert_eq!(document["indexing_status"], "completed", "{status}");
        for stamp in
            ["processing_started_at", "parsing_completed_at", "splitting_completed_at", "completed_at"]
        {
            assert!(document[stamp].is_i64(), "{stamp}: {status}");
        }
    }
    for (query, name) in
        [("north quay", "Moorings"), ("harbour fees", "fees.pdf"), ("lighthouse weather", "keepers.docx")]
    {
        assert_eq!(top_document(url, key, &ds, query).await.as_deref(), Some(name), "{query}");
    }
    assert_eq!(walk(&uploads).len(), 3);

    // Edit a segment: its new text is found at once, its old text no longer.
    let doc = by_text["document"]["id"].as_str().expect("doc").to_owned();
    let segments = format!("/datasets/{ds}/documents/{doc}/segments");
    let (_, list) = v1(url, Method::GET, &segments, Some(key), None).await;
    let seg = list["data"][0]["id"].as_str().expect("segment").to_owned();
    let change = json!({"segment": {"content": "Boats moor at the south pontoon."}});
    let (status, updated) =
        v1(url, Method::POST, &format!("{segments}/{seg}"), Some(key), Some(change)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(top_document(url, key, &ds, "south pontoon").await.as_deref(), Some("Moorings"));
    assert_eq!(top_document(url, key, &ds, "north quay").await, None);

    // Delete a document: its index entries and its file go.
    let pdf_doc = by_pdf["document"]["id"].as_str().expect("doc");
    let (status, _) =
        v1(url, Method::DELETE, &format!("/datasets/{ds}/documents/{pdf_doc}"), Some(key), None).await;
    assert_eq!(status, 204);
    assert_eq!(top_document(url, key, &ds, "harbour fees").await, None);
    let left = walk(&uploads);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.iter().any(|p| p.extension().is_some_and(|e| e == "pdf")), "{left:?}");

    // Delete the dataset: its files go through a `dataset` queue task.
    let (status, _) = v1(url, Method::DELETE, &format!("/datasets/{ds}"), Some(key), None).await;
    assert_eq!(status, 204);
    let (status, _) = v1(
        url,
        Method::POST,
        &format!("/datasets/{ds}/retrieve"),
        Some(key),
        Some(json!({"query": "weather"})),
    )
    .await;
    assert_eq!(status, 404);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !walk(&uploads).is_empty() {
        assert!(Instant::now() < deadline, "the dataset's files stayed: {:?}", walk(&uploads));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_knowledge_flow_in_standalone() {
    let stack = Stack::start(None).await;
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    flow(&stack.url, &key, &stack.dir.path().join("storage")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_knowledge_flow_on_postgres_redis_and_a_separate_worker() {
    let compose = compose().await;
    let _worker = worker(compose.dir.path(), &compose.env);
    flow(&compose.url, &compose.key, &compose.dir.path().join("storage")).await;
}
