//! A kiln server for Knowledge API tests, and helpers to drive it.

use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Browser, KilnProcess, PgDatabase, kiln, workdir};

pub const PASSWORD: &str = "s3cretpass";

pub struct Stack {
    pub server: KilnProcess,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    _db: Option<PgDatabase>,
}

impl Stack {
    pub async fn start(db: Option<PgDatabase>) -> Self {
        Self::start_with(db, &[]).await
    }

    /// A server with extra settings (KEY, value).
    pub async fn start_with(db: Option<PgDatabase>, extra: &[(&str, &str)]) -> Self {
        let mut env = db.as_ref().map(PgDatabase::env).unwrap_or_default();
        env.push(("MIGRATION_ENABLED".into(), "true".into()));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let dir = workdir();
        let mut command = kiln(dir.path());
        command.envs(env.iter().cloned());
        let mut server = KilnProcess::spawn(command);
        let url = server.wait_until_serving();
        Self { server, url, dir, env, _db: db }
    }

    /// The first owner, signed in.
    pub async fn owner(&self) -> Browser {
        let mut browser = Browser::new(&self.url);
        let setup = json!({"email": "owner@example.com", "name": "Owner", "password": PASSWORD});
        assert_eq!(browser.post("/console/api/setup", setup).await.0, 201);
        assert_eq!(browser.login("owner@example.com", PASSWORD).await.0, 200);
        browser
    }

    /// A second workspace's owner, made with `kiln create-tenant`, signed in.
    pub async fn other_owner(&self) -> Browser {
        let output = kiln(self.dir.path())
            .envs(self.env.iter().cloned())
            .args(["create-tenant", "--email", "other@example.com"])
            .output()
            .expect("run create-tenant");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        let password = stdout.lines().find_map(|l| l.strip_prefix("Password: ")).expect("password").trim();
        let mut browser = Browser::new(&self.url);
        assert_eq!(browser.login("other@example.com", password).await.0, 200);
        browser
    }

    pub async fn v1(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        v1(&self.url, method, path, key, body).await
    }

    /// Creates a dataset through /v1 with this key; returns its id.
    pub async fn new_dataset(&self, key: &str, name: &str) -> String {
        let (status, dataset) =
            self.v1(reqwest::Method::POST, "/datasets", Some(key), Some(json!({"name": name}))).await;
        assert_eq!(status, 200, "{dataset}");
        dataset["id"].as_str().expect("id").to_owned()
    }
}

pub async fn new_key(browser: &mut Browser) -> String {
    let (status, body) = browser.post("/console/api/datasets/api-keys", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("dataset-") && token.len() == 32, "{token}");
    assert_eq!(body["type"], "dataset");
    token
}

/// Polls a batch until every document in it is completed (or one fails).
pub async fn wait_indexed(stack: &Stack, key: &str, dataset: &str, batch: &str) -> Value {
    wait_indexed_at(&stack.url, key, dataset, batch).await
}

/// [`wait_indexed`] for a server known by its URL.
pub async fn wait_indexed_at(url: &str, key: &str, dataset: &str, batch: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, body) = v1(
            url,
            reqwest::Method::GET,
            &format!("/datasets/{dataset}/documents/{batch}/indexing-status"),
            Some(key),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let states: Vec<&str> = body["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|d| d["indexing_status"].as_str())
            .collect();
        assert!(!states.contains(&"error"), "{body}");
        if states.iter().all(|s| *s == "completed") {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "indexing did not finish: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Every file under `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A `/v1` call against the server at `url`, with an optional dataset key.
pub async fn v1(
    url: &str,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = super::http().request(method, format!("{url}/v1{path}"));
    if let Some(key) = key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub fn worker(dir: &std::path::Path, env: &[(String, String)]) -> KilnProcess {
    let mut command = kiln(dir);
    command.arg("worker").envs(env.iter().cloned());
    let mut process = KilnProcess::spawn(command);
    process.wait_for_log("kiln worker is consuming", Duration::from_secs(60));
    process
}

/// The compose layout without its workers: PostgreSQL, Redis, an API process, a signed-in
/// owner with a dataset key, and an empty dataset.
pub struct Compose {
    pub db: PgDatabase,
    pub env: Vec<(String, String)>,
    pub dir: tempfile::TempDir,
    pub api: KilnProcess,
    pub url: String,
    pub owner: Browser,
    pub key: String,
    pub ds: String,
}

pub async fn compose() -> Compose {
    let db = PgDatabase::create().await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let mut env = db.env();
    env.extend(
        [
            ("REDIS_HOST", "127.0.0.1".to_owned()),
            ("REDIS_KEY_PREFIX", format!("kiln-test-{unique}:")),
            ("KILN_QUEUE_PREFIX", format!("kiln-test-{unique}")),
            ("KILN_JOB_LEASE_SECONDS", "2".to_owned()),
            ("CELERY_QUEUES", "dataset".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    // The processes share the storage directory, as the compose services share a volume.
    let dir = workdir();
    let mut migrate = kiln(dir.path());
    migrate.arg("upgrade-db").envs(env.iter().cloned());
    assert!(migrate.status().expect("upgrade-db").success());
    let mut api = kiln(dir.path());
    api.env("MODE", "api").envs(env.iter().cloned());
    let mut api = KilnProcess::spawn(api);
    let url = api.wait_until_serving();
    let mut owner = Browser::new(&url);
    let setup = json!({"email": "owner@example.com", "name": "Owner", "password": PASSWORD});
    assert_eq!(owner.post("/console/api/setup", setup).await.0, 201);
    assert_eq!(owner.login("owner@example.com", PASSWORD).await.0, 200);
    let key = new_key(&mut owner).await;
    let (_, dataset) =
        v1(&url, reqwest::Method::POST, "/datasets", Some(&key), Some(json!({"name": "Big"}))).await;
    let ds = dataset["id"].as_str().expect("id").to_owned();
    Compose { db, env, dir, api, url, owner, key, ds }
}

/// A one-page PDF showing `text` in Helvetica, with a correct cross-reference table.
pub fn pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 12 Tf 72 712 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
            .as_bytes(),
    );
    out
}

/// A DOCX holding `paragraphs`.
pub fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs.iter().map(|p| format!("<w:p><w:r><w:t>{p}</w:t></w:r></w:p>")).collect();
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
         <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    );
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("[Content_Types].xml", options).expect("zip");
    zip.write_all(b"<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>").expect("zip");
    zip.start_file("word/document.xml", options).expect("zip");
    zip.write_all(document.as_bytes()).expect("zip");
    zip.finish().expect("zip").into_inner()
}
