//! The compose layout for knowledge bases: PostgreSQL, Redis, an API process and a separate
//! worker. A worker killed with SIGKILL while it indexes a large document leaves it to the
//! next worker, which completes it once, with no duplicated segment.

mod common;

use std::time::{Duration, Instant};

use common::knowledge::{Compose, compose, v1, wait_indexed_at, worker};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_indexing_leaves_the_document_to_the_next_one_without_duplicates() {
    let Compose { db, env, dir, api, url, key, ds, owner: _owner } = compose().await;
    let mut first = worker(dir.path(), &env);
    // ~3 MB of distinct paragraphs: thousands of segments, long enough to be caught mid-way.
    let text: String = (0..30_000)
        .map(|i| format!("Paragraph {i} describes item number {i} of the inventory in some detail.\n\n"))
        .collect();
    let body = json!({"name": "Inventory", "text": text, "indexing_technique": "economy",
        "process_rule": {"mode": "custom", "rules": {"pre_processing_rules": [],
            "segmentation": {"separator": "\n\n", "max_tokens": 100, "chunk_overlap": 0}}}});
    let (status, created) = v1(
        &url,
        reqwest::Method::POST,
        &format!("/datasets/{ds}/document/create-by-text"),
        Some(&key),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let doc = created["document"]["id"].as_str().expect("doc").to_owned();
    let batch = created["batch"].as_str().expect("batch").to_owned();

    // Kill the worker once it is past parsing.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = v1(
            &url,
            reqwest::Method::GET,
            &format!("/datasets/{ds}/documents/{batch}/indexing-status"),
            Some(&key),
            None,
        )
        .await;
        let state = body["data"][0]["indexing_status"].as_str().unwrap_or_default().to_owned();
        if matches!(state.as_str(), "cleaning" | "splitting" | "indexing") {
            break;
        }
        assert_ne!(state, "completed", "indexing finished before the worker could be killed");
        assert!(Instant::now() < deadline, "indexing never started: {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::process::Command::new("kill").args(["-KILL", &first.pid().to_string()]).status().expect("kill");
    first.wait_exit(Duration::from_secs(10));
    assert!(!first.log().contains("document indexed"), "the first worker must not have finished");

    let second = worker(dir.path(), &env);
    wait_indexed_at(&url, &key, &ds, &batch).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !second.log().contains("document indexed") {
        assert!(Instant::now() < deadline, "{}", second.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(second.log().matches("document indexed").count(), 1, "indexed once");

    let pool = db.pool().await;
    let (total, positions, contents): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT position), count(DISTINCT content) FROM document_segments WHERE document_id = $1::uuid",
    )
    .bind(&doc)
    .fetch_one(&pool)
    .await
    .expect("count segments");
    assert_eq!(
        (total, positions, contents),
        (30_000, 30_000, 30_000),
        "one segment per paragraph, none twice"
    );
    let (status, found) = v1(
        &url,
        reqwest::Method::POST,
        &format!("/datasets/{ds}/retrieve"),
        Some(&key),
        Some(json!({"query": "paragraph 29999"})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        found["records"][0]["segment"]["content"].as_str().is_some_and(|c| c.contains("29999")),
        "{found}"
    );
    api.terminate();
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_document_waits_for_resume_and_finished_ones_cannot_be_paused() {
    let Compose { db: _db, env, dir, api: _api, url, mut owner, key, ds } = compose().await;
    // No worker yet: the document waits in the queue, and is paused there.
    let body = json!({"name": "Later", "text": "Resume me when ready.", "indexing_technique": "economy"});
    let (_, created) = v1(
        &url,
        reqwest::Method::POST,
        &format!("/datasets/{ds}/document/create-by-text"),
        Some(&key),
        Some(body),
    )
    .await;
    let doc = created["document"]["id"].as_str().expect("doc").to_owned();
    let batch = created["batch"].as_str().expect("batch").to_owned();
    let processing = |action: &str| format!("/console/api/datasets/{ds}/documents/{doc}/processing/{action}");
    let (status, body) = owner.send(reqwest::Method::PATCH, &processing("pause"), None, true).await;
    assert_eq!(status, 200, "{body}");
    // A worker takes the job and stops at once: the document stays where it was.
    let worker = worker(dir.path(), &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !worker.log().contains("indexing paused") {
        assert!(Instant::now() < deadline, "{}", worker.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, detail) =
        v1(&url, reqwest::Method::GET, &format!("/datasets/{ds}/documents/{doc}"), Some(&key), None).await;
    assert_eq!(
        (detail["indexing_status"].as_str(), detail["display_status"].as_str()),
        (Some("waiting"), Some("queuing")),
        "{detail}"
    );
    let (status, body) = owner.send(reqwest::Method::PATCH, &processing("resume"), None, true).await;
    assert_eq!(status, 200, "{body}");
    wait_indexed_at(&url, &key, &ds, &batch).await;
    let (status, body) = owner.send(reqwest::Method::PATCH, &processing("pause"), None, true).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("document_already_finished")), "{body}");
    let (status, body) = owner.send(reqwest::Method::PATCH, &processing("stop"), None, true).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_action")), "{body}");
}
