//! Dataset API keys and datasets through the real binary: the console routes, and Dify's
//! Knowledge API under /v1 with its auth errors, validation and tenant isolation, on SQLite
//! and on PostgreSQL.

mod common;

use common::{Browser, KilnProcess, PgDatabase, kiln, workdir};
use serde_json::{Value, json};

const PASSWORD: &str = "s3cretpass";

struct Stack {
    _server: KilnProcess,
    url: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    _db: Option<PgDatabase>,
}

impl Stack {
    async fn start(db: Option<PgDatabase>) -> Self {
        let mut env = db.as_ref().map(PgDatabase::env).unwrap_or_default();
        env.push(("MIGRATION_ENABLED".into(), "true".into()));
        let dir = workdir();
        let mut command = kiln(dir.path());
        command.envs(env.iter().cloned());
        let mut server = KilnProcess::spawn(command);
        let url = server.wait_until_serving();
        Self { _server: server, url, dir, env, _db: db }
    }

    /// The first owner, signed in.
    async fn owner(&self) -> Browser {
        let mut browser = Browser::new(&self.url);
        let setup = json!({"email": "owner@example.com", "name": "Owner", "password": PASSWORD});
        assert_eq!(browser.post("/console/api/setup", setup).await.0, 201);
        assert_eq!(browser.login("owner@example.com", PASSWORD).await.0, 200);
        browser
    }

    /// A second workspace's owner, made with `kiln create-tenant`, signed in.
    async fn other_owner(&self) -> Browser {
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

    async fn v1(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = common::http().request(method, format!("{}/v1{path}", self.url));
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
}

async fn new_key(browser: &mut Browser) -> String {
    let (status, body) = browser.post("/console/api/datasets/api-keys", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("dataset-") && token.len() == 32, "{token}");
    assert_eq!(body["type"], "dataset");
    token
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_api_datasets_and_keys_on_sqlite() {
    flow(&Stack::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_api_datasets_and_keys_on_postgres() {
    flow(&Stack::start(Some(PgDatabase::create().await)).await).await;
}
