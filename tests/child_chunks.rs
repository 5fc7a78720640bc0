//! Hierarchical (parent-child) documents through the real binary: parents and child chunks
//! made by the process rule, retrieval returning the matching children, Dify's child-chunk
//! routes re-indexing the parent, and the rule and doc_form checks; on SQLite and PostgreSQL.

mod common;

use common::PgDatabase;
use common::knowledge::{Stack, new_key, wait_indexed};
use reqwest::Method;
use serde_json::{Value, json};

const TEXT: &str = "Harbour rules.\nBoats moor at the north quay.\nFuel is sold at dawn.\n\n\
                    Lighthouse notes.\nThe lamp turns every ten seconds.\nKeepers log the weather.\n\n\
                    Market days.\nFish is sold on Tuesdays.";

fn hierarchical(parent_mode: &str) -> Value {
    json!({"mode": "hierarchical", "rules": {
        "pre_processing_rules": [{"id": "remove_extra_spaces", "enabled": true}],
        "segmentation": {"separator": "\n\n", "max_tokens": 200},
        "parent_mode": parent_mode,
        "subchunk_segmentation": {"separator": "\n", "max_tokens": 50, "chunk_overlap": 0}
    }})
}

fn contents(list: &Value) -> Vec<&str> {
    list.as_array().into_iter().flatten().filter_map(|c| c["content"].as_str()).collect()
}

/// Creates a document by text and waits for it; returns its id.
async fn indexed_document(stack: &Stack, key: &str, ds: &str, body: Value) -> String {
    let path = format!("/datasets/{ds}/document/create-by-text");
    let (status, created) = stack.v1(Method::POST, &path, Some(key), Some(body)).await;
    assert_eq!(status, 200, "{created}");
    wait_indexed(stack, key, ds, created["batch"].as_str().expect("batch")).await;
    created["document"]["id"].as_str().expect("document").to_owned()
}

async fn flow(stack: &Stack) {
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let ds = stack.new_dataset(&key, "Port").await;
    let body = json!({"name": "Port guide", "text": TEXT, "indexing_technique": "economy",
                      "process_rule": hierarchical("paragraph")});
    let doc = indexed_document(stack, &key, &ds, body).await;
    let segments = format!("/datasets/{ds}/documents/{doc}/segments");
    let retrieve_path = format!("/datasets/{ds}/retrieve");
    let retrieve = |query: &'static str| {
        stack.v1(Method::POST, &retrieve_path, Some(&key), Some(json!({"query": query})))
    };

    // Paragraphs become parents; their lines become child chunks, in order.
    let (status, list) = stack.v1(Method::GET, &segments, Some(&key), None).await;
    assert_eq!(
        (status, list["total"].as_i64(), list["doc_form"].as_str()),
        (200, Some(3), Some("hierarchical_model")),
        "{list}"
    );
    let first = &list["data"][0];
    assert_eq!(
        contents(&first["child_chunks"]),
        ["Harbour rules.", "Boats moor at the north quay.", "Fuel is sold at dawn."],
        "{first}"
    );
    assert_eq!(first["child_chunks"][1]["position"], 2);
    assert_eq!(first["child_chunks"][1]["type"], "automatic");
    let (_, dataset) = stack.v1(Method::GET, &format!("/datasets/{ds}"), Some(&key), None).await;
    assert_eq!(dataset["doc_form"], "hierarchical_model", "the first document fixes it: {dataset}");

    // Retrieval returns the parent with the children that matched, best first.
    let (_, found) = retrieve("lamp seconds").await;
    let record = &found["records"][0];
    assert_eq!(record["segment"]["position"], 2, "{found}");
    assert_eq!(contents(&record["child_chunks"]), ["The lamp turns every ten seconds."], "{found}");
    assert_eq!(record["child_chunks"][0]["score"], 1.0);
    let (_, found) = retrieve("sold").await;
    let parents: Vec<i64> = found["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["segment"]["position"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(parents.len(), 2, "{found}");
    assert!(parents.contains(&1) && parents.contains(&3), "{found}");

    // Child-chunk routes: list with paging, add (indexed at once), edit, delete.
    let seg = list["data"][1]["id"].as_str().expect("segment").to_owned();
    let children = format!("{segments}/{seg}/child_chunks");
    let (status, page) = stack.v1(Method::GET, &format!("{children}?limit=2"), Some(&key), None).await;
    assert_eq!(
        (status, page["total"].as_i64(), page["total_pages"].as_i64(), page["data"].as_array().map(Vec::len)),
        (200, Some(3), Some(2), Some(2)),
        "{page}"
    );
    let (_, page) = stack.v1(Method::GET, &format!("{children}?keyword=WEATHER"), Some(&key), None).await;
    assert_eq!(contents(&page["data"]), ["Keepers log the weather."], "{page}");
    let (status, added) =
        stack.v1(Method::POST, &children, Some(&key), Some(json!({"content": "Zephyrine fog horn."}))).await;
    assert_eq!(
        (status, added["data"]["position"].as_i64(), added["data"]["type"].as_str()),
        (200, Some(4), Some("customized")),
        "{added}"
    );
    let child = added["data"]["id"].as_str().expect("child").to_owned();
    let (_, found) = retrieve("zephyrine").await;
    assert_eq!(found["records"][0]["segment"]["id"], seg.as_str(), "{found}");
    assert_eq!(contents(&found["records"][0]["child_chunks"]), ["Zephyrine fog horn."]);
    let full_text = json!({"query": "zephyrine", "retrieval_model": {"search_method": "full_text_search"}});
    let (_, found) = stack.v1(Method::POST, &retrieve_path, Some(&key), Some(full_text)).await;
    assert_eq!(found["records"][0]["segment"]["id"], seg.as_str(), "full text too: {found}");

    let (status, edited) = stack
        .v1(
            Method::PATCH,
            &format!("{children}/{child}"),
            Some(&key),
            Some(json!({"content": "Quokka bell."})),
        )
        .await;
    assert_eq!((status, edited["data"]["content"].as_str()), (200, Some("Quokka bell.")), "{edited}");
    assert_eq!(retrieve("zephyrine").await.1["records"], json!([]));
    assert_eq!(retrieve("quokka").await.1["records"][0]["segment"]["id"], seg.as_str());
    let (status, _) = stack.v1(Method::DELETE, &format!("{children}/{child}"), Some(&key), None).await;
    assert_eq!(status, 204);
    assert_eq!(retrieve("quokka").await.1["records"], json!([]), "a deleted child leaves the index");
    let (status, body) = stack.v1(Method::DELETE, &format!("{children}/{child}"), Some(&key), None).await;
    assert_eq!((status, body["message"].as_str()), (404, Some("Child chunk not found.")), "{body}");
    for bad in [json!({}), json!({"content": "  "})] {
        let (status, body) = stack.v1(Method::POST, &children, Some(&key), Some(bad.clone())).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")), "{bad}: {body}");
    }

    // A new segment gets children by the rule; an edit regenerates them only when asked.
    let add = json!({"segments": [{"content": "Tide tables.\nHigh water at noon."}]});
    let (status, added) = stack.v1(Method::POST, &segments, Some(&key), Some(add)).await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(contents(&added["data"][0]["child_chunks"]), ["Tide tables.", "High water at noon."]);
    let new_seg = added["data"][0]["id"].as_str().expect("segment").to_owned();
    let change = json!({"segment": {"content": "Tide tables.\nLow water at six."}});
    let (_, kept) = stack.v1(Method::POST, &format!("{segments}/{new_seg}"), Some(&key), Some(change)).await;
    assert_eq!(contents(&kept["data"]["child_chunks"]), ["Tide tables.", "High water at noon."], "{kept}");
    let change = json!({"segment": {"content": "Tide tables.\nSlack water at nine.", "regenerate_child_chunks": true}});
    let (_, regenerated) =
        stack.v1(Method::POST, &format!("{segments}/{new_seg}"), Some(&key), Some(change)).await;
    assert_eq!(
        contents(&regenerated["data"]["child_chunks"]),
        ["Tide tables.", "Slack water at nine."],
        "{regenerated}"
    );

    // full-doc: one parent holding every line; its max_tokens may be left out.
    let ds2 = stack.new_dataset(&key, "Whole").await;
    let mut rule = hierarchical("full-doc");
    rule["rules"]["segmentation"] = json!({"separator": "\n\n"});
    let body =
        json!({"name": "Whole guide", "text": TEXT, "indexing_technique": "economy", "process_rule": rule});
    let doc2 = indexed_document(stack, &key, &ds2, body).await;
    let (_, list) =
        stack.v1(Method::GET, &format!("/datasets/{ds2}/documents/{doc2}/segments"), Some(&key), None).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["data"][0]["child_chunks"].as_array().map(Vec::len), Some(8), "{list}");

    // Checks: rules, doc_form, and child chunks of a plain document.
    let create = format!("/datasets/{ds}/document/create-by-text");
    let mut no_children = hierarchical("paragraph");
    no_children["rules"].as_object_mut().expect("rules").remove("subchunk_segmentation");
    let mut bad_parent = hierarchical("paragraph");
    bad_parent["rules"]["parent_mode"] = json!("chapter");
    let cases = [
        (json!({"name": "x", "text": "y", "process_rule": no_children}), "invalid_param"),
        (json!({"name": "x", "text": "y", "process_rule": bad_parent}), "invalid_param"),
        (json!({"name": "x", "text": "y", "doc_form": "text_model"}), "invalid_param"),
        (json!({"name": "x", "text": "y", "doc_form": "qa_model"}), "provider_not_initialize"),
        (json!({"name": "x", "text": "y", "doc_form": "novel_model"}), "invalid_param"),
    ];
    for (body, code) in cases {
        let (status, answer) = stack.v1(Method::POST, &create, Some(&key), Some(body.clone())).await;
        assert_eq!((status, answer["code"].as_str()), (400, Some(code)), "{body}: {answer}");
    }
    let plain = stack.new_dataset(&key, "Plain").await;
    let body = json!({"name": "Flat", "text": "One line.\n\nTwo lines.", "indexing_technique": "economy"});
    let flat = indexed_document(stack, &key, &plain, body).await;
    let flat_segments = format!("/datasets/{plain}/documents/{flat}/segments");
    let (_, list) = stack.v1(Method::GET, &flat_segments, Some(&key), None).await;
    assert_eq!(list["data"][0]["child_chunks"], json!([]), "{list}");
    let flat_seg = list["data"][0]["id"].as_str().expect("segment");
    let (status, body) =
        stack.v1(Method::GET, &format!("{flat_segments}/{flat_seg}/child_chunks"), Some(&key), None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_param")), "{body}");
    let body = json!({"name": "H", "text": "a", "process_rule": hierarchical("paragraph")});
    let (status, answer) = stack
        .v1(Method::POST, &format!("/datasets/{plain}/document/create-by-text"), Some(&key), Some(body))
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_param")),
        "the dataset is text_model: {answer}"
    );

    // Another tenant's key reaches none of it.
    let mut other = stack.other_owner().await;
    let other_key = new_key(&mut other).await;
    let (status, _) = stack.v1(Method::GET, &children, Some(&other_key), None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hierarchical_documents_and_child_chunks_on_sqlite() {
    flow(&Stack::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hierarchical_documents_and_child_chunks_on_postgres() {
    flow(&Stack::start(Some(PgDatabase::create().await)).await).await;
}
