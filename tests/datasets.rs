//! Dataset API keys and datasets through the real binary: the console routes, and Dify's
//! Knowledge API under /v1 with its auth errors, validation and tenant isolation, on SQLite
//! and on PostgreSQL.

mod common;

use common::PgDatabase;
use common::knowledge::{Stack, new_key, wait_indexed, walk};
use serde_json::{Value, json};

async fn flow(stack: &Stack) {
    use reqwest::Method;
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;

    // Auth errors, with Dify's messages.
    let (status, body) = stack.v1(Method::GET, "/datasets", None, None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Authorization header must be provided and start with 'Bearer'"))
    );
    let response = common::http()
        .get(format!("{}/v1/datasets", stack.url))
        .header("Authorization", format!("Basic {key}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["message"], "Authorization scheme must be 'Bearer'");
    let (status, body) = stack.v1(Method::GET, "/datasets", Some("dataset-nope"), None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "{body}");

    // Create, list, get, update, with validation.
    let (status, created) = stack
        .v1(
            Method::POST,
            "/datasets",
            Some(&key),
            Some(json!({"name": "Handbook", "indexing_technique": "economy"})),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["retrieval_model_dict"]["search_method"], "keyword_search", "{created}");
    assert_eq!(
        (created["permission"].as_str(), created["author_name"].as_str()),
        (Some("only_me"), Some("Owner"))
    );
    let (status, body) =
        stack.v1(Method::POST, "/datasets", Some(&key), Some(json!({"name": "Handbook"}))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("dataset_name_duplicate")), "{body}");
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x".repeat(41)}),
        json!({"name": "A", "permission": "everyone"}),
    ] {
        let (status, body) = stack.v1(Method::POST, "/datasets", Some(&key), Some(bad.clone())).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")), "{bad}: {body}");
    }
    let (status, body) = stack
        .v1(
            Method::POST,
            "/datasets",
            Some(&key),
            Some(json!({"name": "HQ", "indexing_technique": "high_quality"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("provider_not_initialize")), "{body}");
    let response = common::http()
        .post(format!("{}/v1/datasets", stack.url))
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);

    for n in 0..3 {
        let (status, _) = stack
            .v1(Method::POST, "/datasets", Some(&key), Some(json!({"name": format!("Notes {n}")})))
            .await;
        assert_eq!(status, 200);
    }
    let (status, page) = stack.v1(Method::GET, "/datasets?page=1&limit=2", Some(&key), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["total"].as_i64(), page["has_more"].as_bool(), page["limit"].as_i64()),
        (Some(4), Some(true), Some(2))
    );
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
    let (_, last) = stack.v1(Method::GET, "/datasets?page=2&limit=2", Some(&key), None).await;
    assert_eq!((last["total"].as_i64(), last["has_more"].as_bool()), (Some(4), Some(false)), "{last}");
    // Past the last page there is no row to carry the total; it is still the count of all.
    let (_, past) = stack.v1(Method::GET, "/datasets?page=9&limit=2", Some(&key), None).await;
    assert_eq!((past["total"].as_i64(), past["data"].as_array().map(Vec::len)), (Some(4), Some(0)), "{past}");
    let (_, found) = stack.v1(Method::GET, "/datasets?keyword=hand", Some(&key), None).await;
    assert_eq!(found["total"], 1, "{found}");
    let (status, body) = stack.v1(Method::GET, "/datasets?limit=abc", Some(&key), None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")));

    let (status, body) = stack
        .v1(
            Method::PATCH,
            &format!("/datasets/{id}"),
            Some(&key),
            Some(json!({"description": "The staff handbook"})),
        )
        .await;
    assert_eq!((status, body["description"].as_str()), (200, Some("The staff handbook")), "{body}");
    let (status, body) = stack.v1(Method::GET, &format!("/datasets/{id}"), Some(&key), None).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("Handbook")), "{body}");
    assert_eq!(body["partial_member_list"], json!([]));

    // Another workspace's key never reaches these datasets: 404, as if they did not exist.
    let mut other = stack.other_owner().await;
    let other_key = new_key(&mut other).await;
    let (_, theirs) = stack.v1(Method::GET, "/datasets", Some(&other_key), None).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"name": "Mine now"}));
        let (status, reply) =
            stack.v1(method.clone(), &format!("/datasets/{id}"), Some(&other_key), body).await;
        assert_eq!((status, reply["code"].as_str()), (404, Some("not_found")), "{method}: {reply}");
    }
    let (status, _) = stack.v1(Method::GET, "/datasets/not-a-uuid", Some(&key), None).await;
    assert_eq!(status, 404);

    // API access can be switched off per dataset from the console.
    let (status, body) = owner.post(&format!("/console/api/datasets/{id}/api-keys/disable"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = stack.v1(Method::GET, &format!("/datasets/{id}"), Some(&key), None).await;
    assert_eq!((status, body["message"].as_str()), (403, Some("Dataset api access is not enabled.")));
    owner.post(&format!("/console/api/datasets/{id}/api-keys/enable"), json!({})).await;

    // Console: list keys (hints only), at most 10, delete one and it stops working at once.
    let (status, keys) = owner.get("/console/api/datasets/api-keys").await;
    assert_eq!(status, 200, "{keys}");
    let listed = keys["data"].as_array().expect("keys");
    assert_eq!(listed.len(), 1);
    assert!(listed[0]["last_used_at"].is_i64(), "last_used_at is recorded: {keys}");
    assert!(
        !listed[0]["token"].as_str().unwrap_or_default().contains(&key[10..28]),
        "never the full key again"
    );
    for _ in 1..10 {
        new_key(&mut owner).await;
    }
    let (status, body) = owner.post("/console/api/datasets/api-keys", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("max_keys_exceeded")), "{body}");
    let key_id = listed[0]["id"].as_str().expect("id");
    let (status, _) =
        owner.send(Method::DELETE, &format!("/console/api/datasets/api-keys/{key_id}"), None, true).await;
    assert_eq!(status, 204);
    let (status, _) = stack.v1(Method::GET, "/datasets", Some(&key), None).await;
    assert_eq!(status, 401, "a deleted key is refused");

    // Console datasets, then delete through /v1.
    let (status, body) = owner.post("/console/api/datasets", json!({"name": "From the console"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, list) = owner.get("/console/api/datasets?limit=100").await;
    assert_eq!((status, list["total"].as_i64()), (200, Some(5)), "{list}");
    let key = new_key(&mut owner).await;
    let (status, _) = stack.v1(Method::DELETE, &format!("/datasets/{id}"), Some(&key), None).await;
    assert_eq!(status, 204);
    let (status, _) = owner.get(&format!("/console/api/datasets/{id}")).await;
    assert_eq!(status, 404);
}

const HANDBOOK: &str = "Holidays\n\nEvery employee gets twenty-five days of paid leave a year.\n\n\
Expenses\n\nTravel costs are refunded within thirty days when receipts are attached.\n\n\
报销\n\n差旅费用在三十天内报销。";

async fn documents_flow(stack: &Stack) {
    use reqwest::Method;
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let ds = stack.new_dataset(&key, "Handbook").await;

    // The first document must say how to index; high_quality needs an embedding provider.
    let create_path = format!("/datasets/{ds}/document/create-by-text");
    let create = |body: Value| stack.v1(Method::POST, &create_path, Some(&key), Some(body));
    let (status, body) = create(json!({"name": "h", "text": HANDBOOK})).await;
    assert_eq!((status, body["message"].as_str()), (400, Some("indexing_technique is required.")), "{body}");
    let (status, body) =
        create(json!({"name": "h", "text": HANDBOOK, "indexing_technique": "high_quality"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("provider_not_initialize")));
    let (status, body) = create(json!({"text": HANDBOOK, "indexing_technique": "economy"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")), "name is required: {body}");
    let custom = |max: u64| {
        json!({"mode": "custom", "rules": {
        "pre_processing_rules": [{"id": "remove_extra_spaces", "enabled": true}],
        "segmentation": {"separator": "\n\n", "max_tokens": max, "chunk_overlap": 0}}})
    };
    let (status, body) = create(
        json!({"name": "h", "text": HANDBOOK, "indexing_technique": "economy", "process_rule": custom(9000)}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("between 50 and 4000")), "{body}");

    let (status, created) = create(json!({"name": "Handbook", "text": HANDBOOK, "indexing_technique": "economy", "process_rule": custom(100)})).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["document"]["indexing_status"], "waiting");
    assert_eq!(created["document"]["display_status"], "queuing");
    let doc = created["document"]["id"].as_str().expect("doc").to_owned();
    let batch = created["batch"].as_str().expect("batch").to_owned();
    assert_eq!(batch.len(), 20, "{batch}");
    let status_body = wait_indexed(stack, &key, &ds, &batch).await;
    let entry = &status_body["data"][0];
    assert!(entry["completed_at"].is_i64() && entry["processing_started_at"].is_i64(), "{entry}");
    assert_eq!(entry["completed_segments"], entry["total_segments"]);
    assert_eq!(entry["total_segments"], 6, "{status_body}");

    // The dataset took the first document's technique; the detail has Dify's fields.
    let (_, dataset) = stack.v1(Method::GET, &format!("/datasets/{ds}"), Some(&key), None).await;
    assert_eq!(dataset["indexing_technique"], "economy");
    let (status, detail) =
        stack.v1(Method::GET, &format!("/datasets/{ds}/documents/{doc}"), Some(&key), None).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        (detail["display_status"].as_str(), detail["segment_count"].as_i64()),
        (Some("available"), Some(6))
    );
    assert_eq!(detail["dataset_process_rule"]["mode"], "custom");
    let (_, only) = stack
        .v1(Method::GET, &format!("/datasets/{ds}/documents/{doc}?metadata=only"), Some(&key), None)
        .await;
    assert_eq!(only.as_object().map(|o| o.len()), Some(3), "{only}");
    let (status, body) = stack
        .v1(Method::GET, &format!("/datasets/{ds}/documents/{doc}?metadata=some"), Some(&key), None)
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_metadata")));
    let (_, list) = stack.v1(Method::GET, &format!("/datasets/{ds}/documents"), Some(&key), None).await;
    assert_eq!(list["total"], 1, "{list}");

    // Retrieval finds the paragraph by its words, in English and in Chinese.
    let retrieve_path = format!("/datasets/{ds}/retrieve");
    let retrieve = |query: Value| stack.v1(Method::POST, &retrieve_path, Some(&key), Some(query));
    let (status, found) = retrieve(json!({"query": "how many days of paid leave?"})).await;
    assert_eq!(status, 200, "{found}");
    let top = &found["records"][0];
    assert!(top["segment"]["content"].as_str().is_some_and(|c| c.contains("twenty-five days")), "{found}");
    assert_eq!(top["segment"]["document"]["name"], "Handbook");
    assert!(top["score"].as_f64().is_some_and(|s| s > 0.0));
    let (_, found) = retrieve(json!({"query": "差旅报销"})).await;
    assert!(
        found["records"][0]["segment"]["content"].as_str().is_some_and(|c| c.contains("差旅")),
        "{found}"
    );
    // Full-text search on request (PostgreSQL tsvector / SQLite FTS5), in both scripts.
    let full_text = |query: &str| json!({"query": query, "retrieval_model": {"search_method": "full_text_search", "top_k": 3}});
    let (status, found) = retrieve(full_text("paid leave days")).await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found["records"][0]["segment"]["content"].as_str().is_some_and(|c| c.contains("twenty-five days")),
        "{found}"
    );
    assert_eq!(found["records"][0]["score"], 1.0, "{found}");
    let (_, found) = retrieve(full_text("差旅费用")).await;
    assert!(
        found["records"][0]["segment"]["content"].as_str().is_some_and(|c| c.contains("差旅")),
        "{found}"
    );
    let (status, body) =
        retrieve(json!({"query": "leave", "retrieval_model": {"search_method": "telepathy"}})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")), "{body}");
    let (status, body) = retrieve(json!({"query": "x".repeat(251)})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")));
    let (status, _) = retrieve(json!({"query": ""})).await;
    assert_eq!(status, 400);
    let (_, alias) = stack
        .v1(
            Method::POST,
            &format!("/datasets/{ds}/hit-testing"),
            Some(&key),
            Some(json!({"query": "receipts"})),
        )
        .await;
    assert!(
        alias["records"][0]["segment"]["content"].as_str().is_some_and(|c| c.contains("receipts")),
        "{alias}"
    );
    assert!(alias["records"][0]["segment"]["hit_count"].as_i64() >= Some(1));

    // Batch status actions: disabled and archived documents leave retrieval, and come back.
    let status_path = |action: &str| format!("/datasets/{ds}/documents/status/{action}");
    let ids = json!({"document_ids": [doc.clone()]});
    for (action, display, found_after) in [
        ("disable", "disabled", false),
        ("enable", "available", true),
        ("archive", "archived", false),
        ("un_archive", "available", true),
    ] {
        let (status, body) =
            stack.v1(Method::PATCH, &status_path(action), Some(&key), Some(ids.clone())).await;
        assert_eq!((status, &body), (200, &json!({"result": "success"})), "{action}");
        let (_, detail) =
            stack.v1(Method::GET, &format!("/datasets/{ds}/documents/{doc}"), Some(&key), None).await;
        assert_eq!(detail["display_status"], display, "{action}: {detail}");
        let (_, found) = retrieve(json!({"query": "receipts"})).await;
        assert_eq!(
            found["records"].as_array().is_some_and(|r| !r.is_empty()),
            found_after,
            "{action}: {found}"
        );
    }
    let (status, body) = stack.v1(Method::PATCH, &status_path("shred"), Some(&key), Some(ids.clone())).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_action")));

    // Update by text: indexed again from the new text, under a new batch.
    let update = format!("/datasets/{ds}/documents/{doc}/update-by-text");
    let (status, body) = stack.v1(Method::POST, &update, Some(&key), Some(json!({"text": "No name"}))).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")), "{body}");
    let new_text = json!({"name": "Handbook v2", "text": "Parking\n\nBicycles park in the courtyard."});
    let (status, updated) = stack.v1(Method::POST, &update, Some(&key), Some(new_text)).await;
    assert_eq!(status, 200, "{updated}");
    let new_batch = updated["batch"].as_str().expect("batch").to_owned();
    assert_ne!(new_batch, batch);
    wait_indexed(stack, &key, &ds, &new_batch).await;
    let (_, found) = retrieve(json!({"query": "bicycles courtyard"})).await;
    assert_eq!(found["records"][0]["segment"]["document"]["name"], "Handbook v2", "{found}");
    let (_, found) = retrieve(json!({"query": "receipts"})).await;
    assert_eq!(found["records"], json!([]), "the old text is gone from the index: {found}");
    assert_eq!(walk(&stack.dir.path().join("storage/upload_files")).len(), 1, "the old file is deleted");

    // Delete: the document, its index and its stored file are gone.
    let stored: Vec<_> = walk(&stack.dir.path().join("storage/upload_files"));
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (status, _) =
        stack.v1(Method::DELETE, &format!("/datasets/{ds}/documents/{doc}"), Some(&key), None).await;
    assert_eq!(status, 204);
    let (_, found) = retrieve(json!({"query": "paid leave"})).await;
    assert_eq!(found["records"], json!([]), "{found}");
    assert!(walk(&stack.dir.path().join("storage/upload_files")).is_empty());
    let (status, _) =
        stack.v1(Method::GET, &format!("/datasets/{ds}/documents/{doc}"), Some(&key), None).await;
    assert_eq!(status, 404);

    // Deleting the dataset takes its documents' files too (a `dataset` queue task).
    let (status, created) = create(json!({"name": "Again", "text": HANDBOOK})).await;
    assert_eq!(status, 200, "{created}");
    let batch = created["batch"].as_str().expect("batch").to_owned();
    wait_indexed(stack, &key, &ds, &batch).await;
    assert_eq!(walk(&stack.dir.path().join("storage/upload_files")).len(), 1);
    let (status, _) = stack.v1(Method::DELETE, &format!("/datasets/{ds}"), Some(&key), None).await;
    assert_eq!(status, 204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !walk(&stack.dir.path().join("storage/upload_files")).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the dataset's stored file was not deleted");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_indexed_and_retrieved_on_sqlite() {
    documents_flow(&Stack::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_indexed_and_retrieved_on_postgres() {
    documents_flow(&Stack::start(Some(PgDatabase::create().await)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_api_datasets_and_keys_on_sqlite() {
    flow(&Stack::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_api_datasets_and_keys_on_postgres() {
    flow(&Stack::start(Some(PgDatabase::create().await)).await).await;
}

async fn segments_flow(stack: &Stack) {
    use reqwest::Method;
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let ds = stack.new_dataset(&key, "Segments").await;
    let rule = json!({"mode": "custom", "rules": {"pre_processing_rules": [],
        "segmentation": {"separator": "\n\n", "max_tokens": 100, "chunk_overlap": 0}}});
    let body = json!({"name": "Notes", "text": "Alpha note.\n\nBeta note.", "indexing_technique": "economy", "process_rule": rule});
    let (_, created) = stack
        .v1(Method::POST, &format!("/datasets/{ds}/document/create-by-text"), Some(&key), Some(body))
        .await;
    let doc = created["document"]["id"].as_str().expect("doc").to_owned();
    wait_indexed(stack, &key, &ds, created["batch"].as_str().expect("batch")).await;
    let segments = format!("/datasets/{ds}/documents/{doc}/segments");
    let retrieve_path = format!("/datasets/{ds}/retrieve");
    let retrieve = |query: &'static str| {
        stack.v1(Method::POST, &retrieve_path, Some(&key), Some(json!({"query": query})))
    };

    let (status, list) = stack.v1(Method::GET, &segments, Some(&key), None).await;
    assert_eq!(
        (status, list["total"].as_i64(), list["doc_form"].as_str()),
        (200, Some(2), Some("text_model")),
        "{list}"
    );
    assert_eq!(list["data"][0]["content"], "Alpha note.");

    // Add: appended after the last, indexed at once, with the given keywords.
    let add = json!({"segments": [{"content": "Gamma note about zeppelins.", "keywords": ["Airship"]}]});
    let (status, added) = stack.v1(Method::POST, &segments, Some(&key), Some(add)).await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(
        (added["data"][0]["position"].as_i64(), added["data"][0]["keywords"].clone()),
        (Some(3), json!(["airship"]))
    );
    let seg = added["data"][0]["id"].as_str().expect("segment").to_owned();
    let (_, found) = retrieve("airship").await;
    assert_eq!(found["records"][0]["segment"]["id"], seg.as_str(), "{found}");
    for bad in [json!({"segments": []}), json!({"segments": [{"content": "  "}]}), json!({})] {
        let (status, body) = stack.v1(Method::POST, &segments, Some(&key), Some(bad.clone())).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")), "{bad}: {body}");
    }

    // Update re-indexes: the new words are found, the old ones no longer.
    let change = json!({"segment": {"content": "Gamma note about submarines."}});
    let (status, updated) =
        stack.v1(Method::POST, &format!("{segments}/{seg}"), Some(&key), Some(change)).await;
    assert_eq!(
        (status, updated["data"]["content"].as_str()),
        (200, Some("Gamma note about submarines.")),
        "{updated}"
    );
    let (_, found) = retrieve("submarines").await;
    assert_eq!(found["records"][0]["segment"]["id"], seg.as_str(), "{found}");
    let (_, found) = retrieve("airship zeppelins").await;
    assert_eq!(found["records"], json!([]), "{found}");
    // The full-text index follows the edit too.
    let full_text =
        |query: &str| json!({"query": query, "retrieval_model": {"search_method": "full_text_search"}});
    let (_, found) = stack.v1(Method::POST, &retrieve_path, Some(&key), Some(full_text("submarines"))).await;
    assert_eq!(found["records"][0]["segment"]["id"], seg.as_str(), "{found}");
    let (_, found) = stack.v1(Method::POST, &retrieve_path, Some(&key), Some(full_text("zeppelins"))).await;
    assert_eq!(found["records"], json!([]), "{found}");
    // Disabled segments are not retrieved.
    let (status, _) = stack
        .v1(
            Method::POST,
            &format!("{segments}/{seg}"),
            Some(&key),
            Some(json!({"segment": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, found) = retrieve("submarines").await;
    assert_eq!(found["records"], json!([]), "{found}");
    let (status, one) = stack.v1(Method::GET, &format!("{segments}/{seg}"), Some(&key), None).await;
    assert_eq!((status, one["data"]["enabled"].as_bool()), (200, Some(false)));

    stack
        .v1(
            Method::POST,
            &format!("{segments}/{seg}"),
            Some(&key),
            Some(json!({"segment": {"enabled": true}})),
        )
        .await;
    let (status, _) = stack.v1(Method::DELETE, &format!("{segments}/{seg}"), Some(&key), None).await;
    assert_eq!(status, 204);
    let (_, found) = stack.v1(Method::POST, &retrieve_path, Some(&key), Some(full_text("submarines"))).await;
    assert_eq!(found["records"], json!([]), "a deleted segment leaves the full-text index: {found}");
    let (status, body) = stack.v1(Method::GET, &format!("{segments}/{seg}"), Some(&key), None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (_, list) = stack.v1(Method::GET, &format!("{segments}?keyword=beta"), Some(&key), None).await;
    assert_eq!(list["total"], 1, "{list}");
    let (_, detail) =
        stack.v1(Method::GET, &format!("/datasets/{ds}/documents/{doc}"), Some(&key), None).await;
    assert_eq!(detail["word_count"], 21, "counts follow the segments: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_added_edited_and_deleted_on_sqlite() {
    segments_flow(&Stack::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_added_edited_and_deleted_on_postgres() {
    segments_flow(&Stack::start(Some(PgDatabase::create().await)).await).await;
}

async fn metadata_flow(stack: &Stack) {
    use reqwest::Method;
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let ds = stack.new_dataset(&key, "Meta").await;
    let body = json!({"name": "Policy", "text": "Remote work is allowed on Fridays.", "indexing_technique": "economy"});
    let (_, created) = stack
        .v1(Method::POST, &format!("/datasets/{ds}/document/create-by-text"), Some(&key), Some(body))
        .await;
    let doc = created["document"]["id"].as_str().expect("doc").to_owned();
    wait_indexed(stack, &key, &ds, created["batch"].as_str().expect("batch")).await;
    let metadata = format!("/datasets/{ds}/metadata");

    let (status, author) = stack
        .v1(Method::POST, &metadata, Some(&key), Some(json!({"type": "string", "name": "author"})))
        .await;
    assert_eq!((status, author["name"].as_str()), (201, Some("author")), "{author}");
    let (_, year) =
        stack.v1(Method::POST, &metadata, Some(&key), Some(json!({"type": "number", "name": "year"}))).await;
    for bad in [
        json!({"type": "string", "name": "author"}),
        json!({"type": "string", "name": "document_name"}),
        json!({"type": "colour", "name": "x"}),
        json!({"type": "string"}),
    ] {
        let (status, body) = stack.v1(Method::POST, &metadata, Some(&key), Some(bad.clone())).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")), "{bad}: {body}");
    }
    let set = |values: Value| json!({"operation_data": [{"document_id": doc, "metadata_list": values}]});
    let values = json!([{"id": author["id"], "name": "author", "value": "Ada"}, {"id": year["id"], "name": "year", "value": "2024"}]);
    let (status, body) = stack
        .v1(Method::POST, &format!("/datasets/{ds}/documents/metadata"), Some(&key), Some(set(values)))
        .await;
    assert_eq!((status, &body), (200, &json!({"result": "success"})), "{body}");
    let bad = json!([{"id": year["id"], "name": "year", "value": "soon"}]);
    let (status, _) = stack
        .v1(Method::POST, &format!("/datasets/{ds}/documents/metadata"), Some(&key), Some(set(bad)))
        .await;
    assert_eq!(status, 400, "a number field refuses text");

    let (_, listed) = stack.v1(Method::GET, &metadata, Some(&key), None).await;
    assert_eq!(listed["doc_metadata"][0]["count"], 1, "{listed}");
    assert_eq!(listed["built_in_field_enabled"], false);
    let (_, detail) =
        stack.v1(Method::GET, &format!("/datasets/{ds}/documents/{doc}"), Some(&key), None).await;
    assert_eq!(detail["doc_metadata"][1]["value"], 2024, "{detail}");

    // Renaming a field renames it on documents; retrieval shows values by name.
    let author_path = format!("{metadata}/{}", author["id"].as_str().expect("id"));
    let (status, renamed) =
        stack.v1(Method::PATCH, &author_path, Some(&key), Some(json!({"name": "writer"}))).await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("writer")), "{renamed}");
    let (_, found) = stack
        .v1(
            Method::POST,
            &format!("/datasets/{ds}/retrieve"),
            Some(&key),
            Some(json!({"query": "remote work"})),
        )
        .await;
    assert_eq!(
        found["records"][0]["segment"]["document"]["doc_metadata"],
        json!({"writer": "Ada", "year": 2024}),
        "{found}"
    );

    let (status, _) = stack.v1(Method::DELETE, &author_path, Some(&key), None).await;
    assert_eq!(status, 204);
    let (_, detail) =
        stack.v1(Method::GET, &format!("/datasets/{ds}/documents/{doc}"), Some(&key), None).await;
    assert_eq!(detail["doc_metadata"].as_array().map(Vec::len), Some(1), "{detail}");

    let (_, built_in) = stack.v1(Method::GET, &format!("{metadata}/built-in"), Some(&key), None).await;
    assert_eq!(built_in["fields"].as_array().map(Vec::len), Some(5), "{built_in}");
    let (status, _) = stack.v1(Method::POST, &format!("{metadata}/built-in/enable"), Some(&key), None).await;
    assert_eq!(status, 200);
    let (_, listed) = stack.v1(Method::GET, &metadata, Some(&key), None).await;
    assert_eq!(listed["built_in_field_enabled"], true, "{listed}");

    // Enabled, every document carries the built-in values; setting values keeps them.
    let built_ins = |detail: &Value| -> serde_json::Map<String, Value> {
        detail["doc_metadata"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["id"] == "built-in")
            .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v["value"].clone())))
            .collect()
    };
    let document_path = format!("/datasets/{ds}/documents/{doc}");
    let (_, detail) = stack.v1(Method::GET, &document_path, Some(&key), None).await;
    let values = built_ins(&detail);
    assert_eq!(
        (values["document_name"].as_str(), values["uploader"].as_str(), values["source"].as_str()),
        (Some("Policy"), Some("Owner"), Some("file_upload")),
        "{detail}"
    );
    assert_eq!(values["upload_date"], detail["created_at"], "{detail}");
    assert!(values["last_update_date"].is_i64(), "{detail}");
    let values = json!([{"id": year["id"], "name": "year", "value": 2025}]);
    stack
        .v1(Method::POST, &format!("/datasets/{ds}/documents/metadata"), Some(&key), Some(set(values)))
        .await;
    let (_, detail) = stack.v1(Method::GET, &document_path, Some(&key), None).await;
    assert_eq!(built_ins(&detail).len(), 5, "a full replace keeps the built-in values: {detail}");
    let (_, found) = stack
        .v1(
            Method::POST,
            &format!("/datasets/{ds}/retrieve"),
            Some(&key),
            Some(json!({"query": "remote work"})),
        )
        .await;
    let shown = &found["records"][0]["segment"]["document"]["doc_metadata"];
    assert_eq!((shown["document_name"].as_str(), &shown["year"]), (Some("Policy"), &json!(2025)), "{found}");
    let body = json!({"name": "Later", "text": "Added after enabling."});
    let (_, later) = stack
        .v1(Method::POST, &format!("/datasets/{ds}/document/create-by-text"), Some(&key), Some(body))
        .await;
    assert_eq!(built_ins(&later["document"])["document_name"], "Later", "a new document gets them: {later}");

    let (status, _) = stack.v1(Method::POST, &format!("{metadata}/built-in/disable"), Some(&key), None).await;
    assert_eq!(status, 200);
    let (_, detail) = stack.v1(Method::GET, &document_path, Some(&key), None).await;
    assert!(built_ins(&detail).is_empty(), "{detail}");
    assert_eq!(detail["doc_metadata"].as_array().map(Vec::len), Some(1), "other values stay: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_fields_and_values_on_sqlite() {
    metadata_flow(&Stack::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_fields_and_values_on_postgres() {
    metadata_flow(&Stack::start(Some(PgDatabase::create().await)).await).await;
}

async fn tags_flow(stack: &Stack) {
    use reqwest::Method;
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let ds = stack.new_dataset(&key, "Tagged").await;
    let (status, tag) =
        stack.v1(Method::POST, "/datasets/tags", Some(&key), Some(json!({"name": "finance"}))).await;
    assert_eq!((status, tag["binding_count"].as_str()), (200, Some("0")), "{tag}");
    let tag_id = tag["id"].as_str().expect("tag").to_owned();
    let (status, body) =
        stack.v1(Method::POST, "/datasets/tags", Some(&key), Some(json!({"name": "finance"}))).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")), "{body}");
    let (status, _) =
        stack.v1(Method::POST, "/datasets/tags", Some(&key), Some(json!({"name": "x".repeat(51)}))).await;
    assert_eq!(status, 400);

    let bind = json!({"tag_ids": [tag_id], "target_id": ds});
    let (status, _) = stack.v1(Method::POST, "/datasets/tags/binding", Some(&key), Some(bind.clone())).await;
    assert_eq!(status, 204);
    let (status, _) = stack.v1(Method::POST, "/datasets/tags/binding", Some(&key), Some(bind)).await;
    assert_eq!(status, 204, "binding twice is harmless");
    let (_, detail) = stack.v1(Method::GET, &format!("/datasets/{ds}"), Some(&key), None).await;
    assert_eq!(detail["tags"], json!([{"id": tag_id, "name": "finance", "type": "knowledge"}]), "{detail}");
    let (_, tags) = stack.v1(Method::GET, &format!("/datasets/{ds}/tags"), Some(&key), None).await;
    assert_eq!(
        (tags["total"].as_i64(), tags["data"][0]["name"].as_str()),
        (Some(1), Some("finance")),
        "{tags}"
    );
    let (_, all) = stack.v1(Method::GET, "/datasets/tags", Some(&key), None).await;
    assert_eq!(all[0]["binding_count"], "1", "{all}");
    // The dataset list filters by tags (repeated or comma-separated tag_ids).
    stack.v1(Method::POST, "/datasets", Some(&key), Some(json!({"name": "Untagged"}))).await;
    let (_, everything) = stack.v1(Method::GET, "/datasets", Some(&key), None).await;
    assert_eq!(everything["total"], 2, "{everything}");
    let (_, tagged) = stack.v1(Method::GET, &format!("/datasets?tag_ids={tag_id}"), Some(&key), None).await;
    assert_eq!(
        (tagged["total"].as_i64(), tagged["data"][0]["id"].as_str()),
        (Some(1), Some(ds.as_str())),
        "{tagged}"
    );
    let unknown = uuid::Uuid::new_v4();
    let (_, either) = stack
        .v1(Method::GET, &format!("/datasets?tag_ids={unknown},{tag_id}&tag_ids=bogus"), Some(&key), None)
        .await;
    assert_eq!(either["total"], 1, "{either}");
    let (_, none) = stack.v1(Method::GET, &format!("/datasets?tag_ids={unknown}"), Some(&key), None).await;
    assert_eq!(none["total"], 0, "{none}");

    let (status, renamed) = stack
        .v1(Method::PATCH, "/datasets/tags", Some(&key), Some(json!({"name": "money", "tag_id": tag_id})))
        .await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("money")), "{renamed}");
    let unbind = json!({"tag_id": tag_id, "target_id": ds});
    let (status, _) = stack.v1(Method::POST, "/datasets/tags/unbinding", Some(&key), Some(unbind)).await;
    assert_eq!(status, 204);
    let (_, tags) = stack.v1(Method::GET, &format!("/datasets/{ds}/tags"), Some(&key), None).await;
    assert_eq!(tags["total"], 0, "{tags}");
    let (status, _) =
        stack.v1(Method::DELETE, "/datasets/tags", Some(&key), Some(json!({"tag_id": tag_id}))).await;
    assert_eq!(status, 204);
    let (status, body) =
        stack.v1(Method::DELETE, "/datasets/tags", Some(&key), Some(json!({"tag_id": tag_id}))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    // Dataset counts follow its documents.
    let body = json!({"name": "One", "text": "Some text to count.", "indexing_technique": "economy"});
    let (_, created) = stack
        .v1(Method::POST, &format!("/datasets/{ds}/document/create-by-text"), Some(&key), Some(body))
        .await;
    wait_indexed(stack, &key, &ds, created["batch"].as_str().expect("batch")).await;
    let (_, detail) = stack.v1(Method::GET, &format!("/datasets/{ds}"), Some(&key), None).await;
    assert_eq!(
        (
            detail["document_count"].as_i64(),
            detail["total_available_documents"].as_i64(),
            detail["word_count"].as_i64()
        ),
        (Some(1), Some(1), Some(19)),
        "{detail}"
    );
    // The list computes the same figures in its own query.
    let (_, list) = stack.v1(Method::GET, "/datasets?limit=100", Some(&key), None).await;
    let listed = list["data"].as_array().and_then(|all| all.iter().find(|d| d["id"] == ds)).expect("listed");
    for field in ["document_count", "total_documents", "total_available_documents", "word_count", "tags"] {
        assert_eq!(listed[field], detail[field], "{field}: {listed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_bind_to_datasets_on_sqlite() {
    tags_flow(&Stack::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_bind_to_datasets_on_postgres() {
    tags_flow(&Stack::start(Some(PgDatabase::create().await)).await).await;
}

/// Runs an admin command against the stack's stores: (exit code, stdout + stderr).
fn admin(stack: &Stack, args: &[&str]) -> (i32, String) {
    let output =
        common::kiln(stack.dir.path()).envs(stack.env.iter().cloned()).args(args).output().expect("run kiln");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_records_and_files_are_listed_then_removed() {
    use reqwest::Method;
    let stack = Stack::start(None).await;
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let ds = stack.new_dataset(&key, "Files").await;
    let body = json!({"name": "Kept", "text": "A document that stays.", "indexing_technique": "economy"});
    let (_, created) = stack
        .v1(Method::POST, &format!("/datasets/{ds}/document/create-by-text"), Some(&key), Some(body))
        .await;
    wait_indexed(&stack, &key, &ds, created["batch"].as_str().expect("batch")).await;
    let uploads = stack.dir.path().join("storage/upload_files");
    let kept = walk(&uploads);
    assert_eq!(kept.len(), 1);
    let stray = kept[0].parent().expect("tenant dir").join("stray.txt");
    std::fs::write(&stray, "left behind").expect("write stray");

    // Young files are left alone by default; --dry-run lists and keeps; no TTY needs --force.
    let (code, out) = admin(&stack, &["remove-orphaned-files-on-storage", "--force"]);
    assert_eq!((code, out.contains("No orphaned files")), (0, true), "{out}");
    let (code, out) =
        admin(&stack, &["remove-orphaned-files-on-storage", "--dry-run", "--min-age-minutes", "0"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("stray.txt") && out.contains("Dry run") && !out.contains(".txt\n  upload"), "{out}");
    assert!(stray.exists());
    let (code, out) = admin(&stack, &["remove-orphaned-files-on-storage", "--min-age-minutes", "0"]);
    assert_eq!(code, 2, "no terminal, no --force: {out}");
    let (code, out) =
        admin(&stack, &["remove-orphaned-files-on-storage", "--force", "--min-age-minutes", "0"]);
    assert_eq!(code, 0, "{out}");
    assert!(!stray.exists() && kept[0].exists(), "only the stray file goes");

    // A record whose document row is gone (as after a crash) is an orphan, then its file.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        stack.dir.path().join("storage/kiln.db").display()
    ))
    .await
    .expect("open the database");
    sqlx::query("DELETE FROM documents").execute(&pool).await.expect("delete documents");
    pool.close().await;
    let (code, out) = admin(&stack, &["clear-orphaned-file-records", "--dry-run", "--min-age-minutes", "0"]);
    assert!(code == 0 && out.contains("Found 1 orphaned file record"), "{out}");
    let (code, out) = admin(&stack, &["clear-orphaned-file-records", "-f", "--min-age-minutes", "0"]);
    assert!(code == 0 && out.contains("Deleted 1"), "{out}");
    let (code, out) = admin(&stack, &["remove-orphaned-files-on-storage", "-f", "--min-age-minutes", "0"]);
    assert_eq!(code, 0, "{out}");
    assert!(walk(&uploads).is_empty(), "the record's file went next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_beat_disables_documents_of_unused_datasets() {
    use reqwest::Method;
    // An unused-after window of 0 days and a tick every second, so the clean-up runs now.
    let extra = [
        ("ENABLE_CLEAN_UNUSED_DATASETS_TASK", "true"),
        ("PLAN_SANDBOX_CLEAN_DAY_SETTING", "0"),
        ("KILN_BEAT_CLEAN_UNUSED_DATASETS_CRON", "* * * * * *"),
    ];
    let stack = Stack::start_with(None, &extra).await;
    let (code, listed) = {
        let output = common::kiln(stack.dir.path())
            .envs(stack.env.iter().cloned())
            .args(["beat", "list"])
            .output()
            .expect("beat list");
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    assert_eq!(code, Some(0));
    let row = listed.lines().find(|l| l.starts_with("clean_unused_datasets_task")).expect("row");
    assert!(row.contains(" yes "), "{listed}");

    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let ds = stack.new_dataset(&key, "Forgotten").await;
    let body = json!({"name": "Old", "text": "Nobody reads this any more.", "indexing_technique": "economy"});
    let (_, created) = stack
        .v1(Method::POST, &format!("/datasets/{ds}/document/create-by-text"), Some(&key), Some(body))
        .await;
    let doc = created["document"]["id"].as_str().expect("doc").to_owned();
    wait_indexed(&stack, &key, &ds, created["batch"].as_str().expect("batch")).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, detail) =
            stack.v1(Method::GET, &format!("/datasets/{ds}/documents/{doc}"), Some(&key), None).await;
        if detail["display_status"] == "disabled" {
            assert!(detail["disabled_at"].is_i64(), "{detail}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the clean-up never disabled the document: {detail}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(stack.server.log().contains("disabled the documents of unused datasets"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_beat_sweeps_orphaned_upload_files() {
    use reqwest::Method;
    // A sweep every second; orphans count from an hour old.
    let extra = [("KILN_BEAT_ORPHAN_SWEEP_CRON", "* * * * * *"), ("KILN_ORPHAN_SWEEP_MIN_AGE_HOURS", "1")];
    let stack = Stack::start_with(None, &extra).await;
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let ds = stack.new_dataset(&key, "Sweep").await;
    let mut documents = Vec::new();
    for name in ["Kept", "Lost"] {
        let body = json!({"name": name, "text": format!("{name} text."), "indexing_technique": "economy"});
        let (_, created) = stack
            .v1(Method::POST, &format!("/datasets/{ds}/document/create-by-text"), Some(&key), Some(body))
            .await;
        wait_indexed(&stack, &key, &ds, created["batch"].as_str().expect("batch")).await;
        documents.push(created["document"]["id"].as_str().expect("doc").to_owned());
    }
    let uploads = stack.dir.path().join("storage/upload_files");
    let files = walk(&uploads);
    assert_eq!(files.len(), 2);
    let tenant_dir = files[0].parent().expect("tenant dir").to_owned();

    // The "Lost" document's row vanishes (as after a crash) and its record is two hours old;
    // one stray object is old, another was just written (an upload in progress).
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        stack.dir.path().join("storage/kiln.db").display()
    ))
    .await
    .expect("open the database");
    let lost_file: String = sqlx::query_scalar("SELECT storage_key FROM upload_files f JOIN documents d ON d.upload_file_id = f.id WHERE d.name = 'Lost'")
        .fetch_one(&pool)
        .await
        .expect("lost file");
    sqlx::query("DELETE FROM documents WHERE name = 'Lost'").execute(&pool).await.expect("delete");
    let two_hours_ago = chrono::Utc::now() - chrono::Duration::hours(2);
    sqlx::query("UPDATE upload_files SET created_at = $1 WHERE storage_key = $2")
        .bind(two_hours_ago)
        .bind(&lost_file)
        .execute(&pool)
        .await
        .expect("age the record");
    let old_stray = tenant_dir.join("old-stray.txt");
    let young_stray = tenant_dir.join("young-stray.txt");
    std::fs::write(&old_stray, "left behind").expect("write");
    std::fs::write(&young_stray, "being uploaded").expect("write");
    let touched = std::process::Command::new("touch")
        .args(["-d", "3 hours ago"])
        .arg(&old_stray)
        .status()
        .expect("touch");
    assert!(touched.success());

    let lost_path = stack.dir.path().join("storage").join(&lost_file);
    assert!(lost_path.exists());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while old_stray.exists() || lost_path.exists() {
        assert!(std::time::Instant::now() < deadline, "the sweep never ran: {}", stack.server.log());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let records: i64 =
        sqlx::query_scalar("SELECT count(*) FROM upload_files").fetch_one(&pool).await.expect("count");
    assert_eq!(records, 1, "the orphaned record went with its file");
    assert!(young_stray.exists(), "a young object is left alone");
    let kept = walk(&uploads);
    assert_eq!(kept.len(), 2, "the kept document's file and the young stray remain: {kept:?}");
    let (_, found) = stack
        .v1(Method::POST, &format!("/datasets/{ds}/retrieve"), Some(&key), Some(json!({"query": "kept"})))
        .await;
    assert_eq!(found["records"].as_array().map(Vec::len), Some(1), "{found}");
    assert!(stack.server.log().contains("swept orphaned upload files"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_download_as_one_zip() {
    use reqwest::Method;
    use std::io::Read;
    let stack = Stack::start(None).await;
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let ds = stack.new_dataset(&key, "Zip").await;
    let mut ids = Vec::new();
    for text in ["First notes.", "Second notes."] {
        let body = json!({"name": "Notes", "text": text, "indexing_technique": "economy"});
        let (_, created) = stack
            .v1(Method::POST, &format!("/datasets/{ds}/document/create-by-text"), Some(&key), Some(body))
            .await;
        ids.push(created["document"]["id"].as_str().expect("doc").to_owned());
    }
    let zip_path = format!("/datasets/{ds}/documents/download-zip");
    let response = common::http()
        .post(format!("{}/v1{zip_path}", stack.url))
        .header("Authorization", format!("Bearer {key}"))
        .json(&json!({"document_ids": ids}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let bytes = response.bytes().await.expect("body");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a zip");
    let mut files = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).expect("entry");
        let mut text = String::new();
        entry.read_to_string(&mut text).expect("text");
        files.push((entry.name().expect("entry name").to_string(), text));
    }
    assert_eq!(
        files,
        [
            ("Notes.txt".to_owned(), "First notes.".to_owned()),
            ("Notes (2).txt".to_owned(), "Second notes.".to_owned())
        ]
    );

    let too_many: Vec<String> = (0..101).map(|_| ids[0].clone()).collect();
    for (body, status, code) in [
        (json!({"document_ids": []}), 400, "invalid_param"),
        (json!({}), 400, "invalid_param"),
        (json!({"document_ids": too_many}), 400, "invalid_param"),
        (json!({"document_ids": ["0b2c8a3e-59a4-4bde-a6c3-1f0e5d7c9a11"]}), 404, "not_found"),
    ] {
        let (got, answer) = stack.v1(Method::POST, &zip_path, Some(&key), Some(body.clone())).await;
        assert_eq!((got, answer["code"].as_str()), (status, Some(code)), "{body}: {answer}");
    }
    let mut other = stack.other_owner().await;
    let other_key = new_key(&mut other).await;
    let (status, _) =
        stack.v1(Method::POST, &zip_path, Some(&other_key), Some(json!({"document_ids": ids}))).await;
    assert_eq!(status, 404, "another tenant's key");
}
