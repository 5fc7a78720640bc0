//! Documents from uploaded files through `/v1/…/document/create-by-file`: every supported
//! format is read and indexed, and bad uploads get Dify's status and code.

mod common;

use common::PgDatabase;
use common::knowledge::{Stack, docx, new_key, pdf, wait_indexed, walk};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

async fn upload(
    stack: &Stack,
    key: &str,
    dataset: &str,
    files: Vec<(&str, Vec<u8>)>,
    data: Option<Value>,
) -> (u16, Value) {
    let mut form = Form::new();
    for (name, bytes) in files {
        form = form.part("file", Part::bytes(bytes).file_name(name.to_owned()));
    }
    if let Some(data) = data {
        form = form.text("data", data.to_string());
    }
    let response = common::http()
        .post(format!("{}/v1/datasets/{dataset}/document/create-by-file", stack.url))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn retrieve(stack: &Stack, key: &str, dataset: &str, query: &str) -> Value {
    let (status, body) = stack
        .v1(
            reqwest::Method::POST,
            &format!("/datasets/{dataset}/retrieve"),
            Some(key),
            Some(json!({"query": query})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn files_flow(stack: &Stack) {
    let mut owner = stack.owner().await;
    let key = new_key(&mut owner).await;
    let ds = stack.new_dataset(&key, "Files").await;
    let rule = json!({"indexing_technique": "economy", "process_rule": {"mode": "automatic"}});

    // Bad uploads first: Dify's codes, nothing stored.
    let (status, body) = upload(stack, &key, &ds, vec![], Some(rule.clone())).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("no_file_uploaded")), "{body}");
    let two = vec![("a.txt", b"one".to_vec()), ("b.txt", b"two".to_vec())];
    let (status, body) = upload(stack, &key, &ds, two, Some(rule.clone())).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("too_many_files")), "{body}");
    let (status, body) =
        upload(stack, &key, &ds, vec![("tool.exe", b"MZ".to_vec())], Some(rule.clone())).await;
    assert_eq!((status, body["code"].as_str()), (415, Some("unsupported_file_type")), "{body}");
    let (status, body) =
        upload(stack, &key, &ds, vec![("page.html", b"<p>hi</p>".to_vec())], Some(rule.clone())).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("file_extension_blocked")), "{body}");
    let corrupt = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog".to_vec();
    let (status, body) = upload(stack, &key, &ds, vec![("broken.pdf", corrupt)], Some(rule.clone())).await;
    assert_eq!((status, body["code"].as_str()), (415, Some("unsupported_file_type")), "{body}");
    let big = vec![b'a'; 1024 * 1024 + 1];
    let (status, body) = upload(stack, &key, &ds, vec![("big.txt", big)], Some(rule.clone())).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("file_too_large")), "{body}");
    let (status, body) = upload(stack, &key, &ds, vec![("notes.txt", b"hello".to_vec())], None).await;
    assert_eq!((status, body["message"].as_str()), (400, Some("indexing_technique is required.")), "{body}");
    let (status, body) = upload(
        stack,
        &key,
        &ds,
        vec![("notes.txt", b"hello".to_vec())],
        Some(json!({"indexing_technique": "economy"})),
    )
    .await;
    assert_eq!((status, body["message"].as_str()), (400, Some("process_rule is required.")), "{body}");
    assert!(walk(&stack.dir.path().join("storage/upload_files")).is_empty(), "refused uploads store nothing");

    // Every supported format, each with a phrase of its own.
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        ("report.pdf", pdf("Quarterly revenue grew by twelve percent"), "quarterly revenue"),
        (
            "minutes.docx",
            docx(&["Board meeting minutes", "The board approved the greenhouse budget"]),
            "greenhouse budget",
        ),
        ("readme.md", b"# Setup\n\nInstall the lighthouse daemon first.".to_vec(), "lighthouse daemon"),
        ("staff.csv", b"name,role\nAda,compiler architect\n".to_vec(), "compiler architect"),
        ("config.json", br#"{"service": "aurora borealis tracker"}"#.to_vec(), "aurora borealis"),
        ("plain.txt", "茶叶的种植需要温暖湿润的气候".as_bytes().to_vec(), "茶叶种植"),
    ];
    let mut first = true;
    for (name, bytes, _) in &files {
        let data = if first { rule.clone() } else { json!({}) };
        first = false;
        let (status, created) = upload(stack, &key, &ds, vec![(name, bytes.clone())], Some(data)).await;
        assert_eq!(status, 200, "{name}: {created}");
        assert_eq!(created["document"]["name"], *name);
        let batch = created["batch"].as_str().expect("batch").to_owned();
        wait_indexed(stack, &key, &ds, &batch).await;
    }
    for (name, _, query) in &files {
        let found = retrieve(stack, &key, &ds, query).await;
        assert_eq!(found["records"][0]["segment"]["document"]["name"], *name, "{query}: {found}");
    }
    let stored = walk(&stack.dir.path().join("storage/upload_files"));
    assert_eq!(stored.len(), files.len());
    assert!(stored.iter().any(|p| p.extension().is_some_and(|e| e == "pdf")), "{stored:?}");

    // Replace the PDF by a DOCX (PATCH, multipart): the new text is found, the old one not.
    let (_, list) = stack
        .v1(reqwest::Method::GET, &format!("/datasets/{ds}/documents?keyword=report"), Some(&key), None)
        .await;
    let report = list["data"][0]["id"].as_str().expect("report").to_owned();
    let form = Form::new()
        .part("file", Part::bytes(docx(&["Revenue fell in the winter quarter"])).file_name("report-v2.docx"));
    let response = common::http()
        .patch(format!("{}/v1/datasets/{ds}/documents/{report}", stack.url))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.expect("json");
    assert_eq!(updated["document"]["name"], "report-v2.docx");
    wait_indexed(stack, &key, &ds, updated["batch"].as_str().expect("batch")).await;
    let found = retrieve(stack, &key, &ds, "winter quarter").await;
    assert_eq!(found["records"][0]["segment"]["document"]["name"], "report-v2.docx", "{found}");
    let found = retrieve(stack, &key, &ds, "twelve percent").await;
    assert_eq!(found["records"], json!([]), "{found}");
    let stored = walk(&stack.dir.path().join("storage/upload_files"));
    assert!(
        !stored.iter().any(|p| p.extension().is_some_and(|e| e == "pdf")),
        "the PDF is deleted: {stored:?}"
    );

    // Download: a signed URL that serves the stored file, and nothing without its signature.
    let (status, link) = stack
        .v1(reqwest::Method::GET, &format!("/datasets/{ds}/documents/{report}/download"), Some(&key), None)
        .await;
    assert_eq!(status, 200, "{link}");
    let url = link["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with("/files/") && url.contains("&sign="), "{url}");
    let response = common::http().get(format!("{}{url}", stack.url)).send().await.expect("download");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap_or_default().contains("wordprocessingml"));
    let bytes = response.bytes().await.expect("bytes");
    assert_eq!(bytes.as_ref(), docx(&["Revenue fell in the winter quarter"]).as_slice());
    let forged = url.replace("sign=", "sign=x");
    let response = common::http().get(format!("{}{forged}", stack.url)).send().await.expect("forged");
    assert_eq!(response.status(), 403);
    let bare = url.split('?').next().expect("path");
    let response = common::http().get(format!("{}{bare}", stack.url)).send().await.expect("bare");
    assert_eq!(response.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_every_format_are_indexed_and_bad_uploads_refused_on_sqlite() {
    let extra = [("UPLOAD_FILE_SIZE_LIMIT", "1"), ("UPLOAD_FILE_EXTENSION_BLACKLIST", "html, bat")];
    files_flow(&Stack::start_with(None, &extra).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_every_format_are_indexed_and_bad_uploads_refused_on_postgres() {
    let extra = [("UPLOAD_FILE_SIZE_LIMIT", "1"), ("UPLOAD_FILE_EXTENSION_BLACKLIST", "html, bat")];
    files_flow(&Stack::start_with(Some(PgDatabase::create().await), &extra).await).await;
}
