//! Console setup, login, tokens, CSRF and workspaces through the real binary, on SQLite
//! (tokens in the database) and on PostgreSQL with Redis (tokens under Dify's Redis keys).

mod common;

use common::{Browser, KilnProcess, PgDatabase, kiln, workdir};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const OWNER: &str = "Owner@Example.com";
const PASSWORD: &str = "s3cretpass";

/// A running server plus what is needed to run admin commands against the same stores.
struct Stack {
    _server: KilnProcess,
    url: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    _db: Option<PgDatabase>,
}

impl Stack {
    async fn sqlite(extra: &[(&str, &str)]) -> Self {
        Self::start(Vec::new(), None, extra).await
    }

    async fn postgres_redis(extra: &[(&str, &str)]) -> Self {
        let db = PgDatabase::create().await;
        let mut env = db.env();
        env.push(("REDIS_HOST".into(), "127.0.0.1".into()));
        // Each test gets its own Redis keys: lockout counters are per email, and every test
        // signs in as the same owner.
        let unique = uuid::Uuid::new_v4().simple().to_string();
        env.push(("REDIS_KEY_PREFIX".into(), format!("kiln-test-{unique}:")));
        // Standalone runs a worker: keep its queues to this test.
        env.push(("KILN_QUEUE_PREFIX".into(), format!("kiln-test-{unique}")));
        env.push(("MIGRATION_ENABLED".into(), "true".into()));
        Self::start(env, Some(db), extra).await
    }

    async fn start(mut env: Vec<(String, String)>, db: Option<PgDatabase>, extra: &[(&str, &str)]) -> Self {
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let dir = workdir();
        let mut command = kiln(dir.path());
        command.envs(env.iter().cloned());
        let mut server = KilnProcess::spawn(command);
        let url = server.wait_until_serving();
        Self { _server: server, url, dir, env, _db: db }
    }

    /// An admin command against the same database, storage and Redis.
    fn admin(&self, args: &[&str]) -> Command {
        let mut command = kiln(self.dir.path());
        command.envs(self.env.iter().cloned()).args(args);
        command
    }

    async fn setup_owner(&self) -> Browser {
        let mut browser = Browser::new(&self.url);
        let (status, body) = browser
            .post("/console/api/setup", json!({"email": OWNER, "name": "Owner", "password": PASSWORD}))
            .await;
        assert_eq!(status, 201, "{body}");
        browser
    }
}

fn output(mut command: Command) -> (i32, String, String) {
    let output = command.output().expect("run kiln");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn console_flow(stack: &Stack) {
    let mut browser = Browser::new(&stack.url);
    assert_eq!(browser.get("/console/api/setup").await.1, json!({"step": "not_started"}));
    let (status, body) = browser.login(OWNER, PASSWORD).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("not_setup")), "{body}");

    let mut browser = stack.setup_owner().await;
    let (status, body) = browser.get("/console/api/setup").await;
    assert_eq!((status, body["step"].as_str()), (200, Some("finished")), "{body}");
    let (status, body) = browser
        .post("/console/api/setup", json!({"email": "second@example.com", "name": "X", "password": PASSWORD}))
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("already_setup")), "{body}");

    // Setup does not log in; the profile needs a session.
    let (status, _) = browser.get("/console/api/account/profile").await;
    assert_eq!(status, 401);

    let (status, body) = browser.login("owner@example.com", PASSWORD).await;
    assert_eq!((status, &body), (200, &json!({"result": "success"})));
    let access =
        browser.last_set_cookies.iter().find(|c| c.starts_with("access_token=")).expect("access cookie");
    let csrf = browser.last_set_cookies.iter().find(|c| c.starts_with("csrf_token=")).expect("csrf cookie");
    let refresh =
        browser.last_set_cookies.iter().find(|c| c.starts_with("refresh_token=")).expect("refresh cookie");
    for cookie in [access, csrf, refresh] {
        assert!(cookie.contains("Path=/") && cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain http must not set Secure: {cookie}");
    }
    assert!(access.contains("HttpOnly") && access.contains("Max-Age=3600"), "{access}");
    assert!(refresh.contains("HttpOnly") && refresh.contains("Max-Age=2592000"), "{refresh}");
    assert!(!csrf.contains("HttpOnly"), "the web client must read the csrf cookie: {csrf}");

    let (status, profile) = browser.get("/console/api/account/profile").await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["email"], "owner@example.com", "stored lower-cased");
    assert_eq!(profile["name"], "Owner");
    assert_eq!(profile["is_password_set"], true);

    // CSRF: missing or wrong header → 401 even for GET.
    let (status, body) =
        browser.send(reqwest::Method::GET, "/console/api/account/profile", None, false).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("CSRF token is missing or invalid.")));
    let mut forged = Browser::new(&stack.url);
    forged.cookies = browser.cookies.clone();
    forged.cookies.insert("csrf_token".into(), "forged".into());
    assert_eq!(forged.get("/console/api/account/profile").await.0, 401);
    // A forged header with no csrf cookie at all is refused too.
    let response = common::http()
        .get(format!("{}/console/api/account/profile", stack.url))
        .bearer_auth(&browser.cookies["access_token"])
        .header("X-CSRF-Token", "forged")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);

    // The access token also works as a Bearer token (with the CSRF header).
    let access_token = browser.cookies["access_token"].clone();
    let response = common::http()
        .get(format!("{}/console/api/workspaces/current", stack.url))
        .bearer_auth(&access_token)
        .header("X-CSRF-Token", browser.csrf().expect("csrf"))
        .send()
        .await
        .expect("bearer request");
    assert_eq!(response.status(), 200);
    let workspace: serde_json::Value = response.json().await.expect("json");
    assert_eq!(workspace["name"], "Owner's Workspace");
    assert_eq!(workspace["role"], "owner");

    let (status, body) =
        browser.post("/console/api/workspaces/current/name", json!({"name": "Renamed"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(browser.get("/console/api/workspaces/current").await.1["name"], "Renamed");

    // Refresh rotation: the new token works once; the old one never again.
    let old_refresh = browser.cookies["refresh_token"].clone();
    let (status, body) = browser.post("/console/api/refresh-token", json!({})).await;
    assert_eq!((status, &body), (200, &json!({"result": "success"})));
    assert_ne!(browser.cookies["refresh_token"], old_refresh);
    assert_eq!(browser.get("/console/api/account/profile").await.0, 200, "new access token works");
    let mut replay = Browser::new(&stack.url);
    replay.cookies.insert("refresh_token".into(), old_refresh);
    let (status, body) = replay.post("/console/api/refresh-token", json!({})).await;
    assert_eq!((status, body["result"].as_str()), (401, Some("fail")), "{body}");
    let (status, body) = Browser::new(&stack.url).post("/console/api/refresh-token", json!({})).await;
    assert_eq!((status, &body), (401, &json!({"result": "fail", "message": "No refresh token provided"})));

    // Logout clears the cookies and revokes the refresh token.
    let current_refresh = browser.cookies["refresh_token"].clone();
    let (status, _) = browser.post("/console/api/logout", json!({})).await;
    assert_eq!(status, 200);
    assert!(
        browser.last_set_cookies.iter().all(|c| c.contains("Max-Age=0")),
        "{:?}",
        browser.last_set_cookies
    );
    let mut after = Browser::new(&stack.url);
    after.cookies.insert("refresh_token".into(), current_refresh);
    assert_eq!(after.post("/console/api/refresh-token", json!({})).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_flow_on_sqlite() {
    let stack = Stack::sqlite(&[]).await;
    console_flow(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_flow_on_postgres_with_redis_tokens() {
    let stack = Stack::postgres_redis(&[]).await;
    console_flow(&stack).await;
    // Log in again and check the refresh token sits under Dify's key names.
    let mut browser = Browser::new(&stack.url);
    assert_eq!(browser.login(OWNER, PASSWORD).await.0, 200);
    let token = browser.cookies["refresh_token"].clone();
    let client = redis::Client::open("redis://127.0.0.1:6379/0").expect("redis client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let prefix = &stack.env.iter().find(|(k, _)| k == "REDIS_KEY_PREFIX").expect("prefix").1;
    let account: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}refresh_token:{token}"))
        .query_async(&mut conn)
        .await
        .expect("GET");
    let account = account.expect("refresh_token:{t} set in Redis");
    let back: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}account_refresh_token:{account}"))
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(back.as_deref(), Some(token.as_str()));
}

async fn lockout(stack: &Stack) {
    let mut browser = stack.setup_owner().await;
    for attempt in 1..=5 {
        let (status, body) = browser.login(OWNER, "wrong-password-1").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("authentication_failed")),
            "attempt {attempt}: {body}"
        );
    }
    let (status, body) = browser.login(OWNER, PASSWORD).await;
    assert_eq!(status, 429, "sixth attempt is refused even with the right password: {body}");
    // The operator's fix: reset-password clears the lockout.
    let (code, stdout, stderr) = output(stack.admin(&[
        "reset-password",
        "--email",
        OWNER,
        "--new-password",
        "n3wpassword",
        "--password-confirm",
        "n3wpassword",
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Password reset successfully."));
    assert_eq!(browser.login(OWNER, "n3wpassword").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failed_logins_lock_the_email_on_sqlite() {
    lockout(&Stack::sqlite(&[]).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failed_logins_lock_the_email_in_redis() {
    lockout(&Stack::postgres_redis(&[]).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_urls_give_host_prefixed_secure_cookies() {
    let stack = Stack::sqlite(&[
        ("CONSOLE_WEB_URL", "https://console.example.com"),
        ("CONSOLE_API_URL", "https://api.example.com"),
    ])
    .await;
    let mut browser = stack.setup_owner().await;
    assert_eq!(browser.login(OWNER, PASSWORD).await.0, 200);
    for name in ["__Host-access_token=", "__Host-refresh_token=", "__Host-csrf_token="] {
        let cookie =
            browser.last_set_cookies.iter().find(|c| c.starts_with(name)).unwrap_or_else(|| panic!("{name}"));
        assert!(cookie.contains("Secure") && !cookie.contains("Domain="), "{cookie}");
    }
    assert_eq!(browser.get("/console/api/account/profile").await.0, 200, "prefixed cookies are read back");

    let shared = Stack::sqlite(&[
        ("CONSOLE_WEB_URL", "https://console.example.com"),
        ("CONSOLE_API_URL", "https://api.example.com"),
        ("COOKIE_DOMAIN", ".example.com"),
    ])
    .await;
    let mut browser = shared.setup_owner().await;
    assert_eq!(browser.login(OWNER, PASSWORD).await.0, 200);
    let access =
        browser.last_set_cookies.iter().find(|c| c.starts_with("access_token=")).expect("unprefixed");
    assert!(access.contains("Domain=example.com") && access.contains("Secure"), "{access}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_password_gates_setup() {
    let stack = Stack::sqlite(&[("INIT_PASSWORD", "letmein")]).await;
    let mut browser = Browser::new(&stack.url);
    assert_eq!(browser.get("/console/api/init").await.1, json!({"status": "not_started"}));
    let setup = json!({"email": OWNER, "name": "Owner", "password": PASSWORD});
    let (status, body) = browser.post("/console/api/setup", setup.clone()).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("not_init_validated")));
    let (status, body) = browser.post("/console/api/init", json!({"password": "nope"})).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("init_validate_failed")));
    let (status, _) = browser.post("/console/api/init", json!({"password": "letmein"})).await;
    assert_eq!(status, 201);
    assert_eq!(browser.get("/console/api/init").await.1, json!({"status": "finished"}));
    assert_eq!(browser.post("/console/api/setup", setup).await.0, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_json_4xx() {
    let stack = Stack::sqlite(&[]).await;
    let mut browser = Browser::new(&stack.url);
    for (body, code) in [
        (json!({"email": "not-an-email", "name": "A", "password": PASSWORD}), "invalid_email"),
        (json!({"email": OWNER, "name": "A", "password": "short"}), "invalid_param"),
        (json!({"email": OWNER, "name": "", "password": PASSWORD}), "invalid_param"),
        (json!({"email": OWNER}), "invalid_param"),
    ] {
        let (status, reply) = browser.post("/console/api/setup", body).await;
        assert_eq!((status, reply["code"].as_str()), (400, Some(code)), "{reply}");
    }
    let response = common::http()
        .post(format!("{}/console/api/login", stack.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "invalid_param");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_one_workspace_never_sees_another() {
    let stack = Stack::postgres_redis(&[]).await;
    let mut owner = stack.setup_owner().await;
    assert_eq!(owner.login(OWNER, PASSWORD).await.0, 200);
    let (code, stdout, stderr) =
        output(stack.admin(&["create-tenant", "--email", "other@example.com", "--name", "Other Co"]));
    assert_eq!(code, 0, "{stderr}");
    let password =
        stdout.lines().find_map(|l| l.strip_prefix("Password: ")).expect("password printed").to_owned();
    let mut other = Browser::new(&stack.url);
    assert_eq!(other.login("other@example.com", &password).await.0, 200);

    let mine = owner.get("/console/api/workspaces/current").await.1;
    let theirs = other.get("/console/api/workspaces/current").await.1;
    assert_ne!(mine["id"], theirs["id"]);
    assert_eq!(theirs["name"], "Other Co");
    assert_eq!(
        other.post("/console/api/workspaces/current/name", json!({"name": "Taken over"})).await.0,
        200
    );
    assert_eq!(owner.get("/console/api/workspaces/current").await.1["name"], "Owner's Workspace");
    // One user's tokens never act for the other.
    let mut mixed = Browser::new(&stack.url);
    mixed.cookies.insert("access_token".into(), other.cookies["access_token"].clone());
    mixed.cookies.insert("csrf_token".into(), owner.csrf().expect("csrf"));
    assert_eq!(mixed.get("/console/api/workspaces/current").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dify_pbkdf2_hash_logs_in_and_is_upgraded() {
    let stack = Stack::sqlite(&[]).await;
    let mut browser = stack.setup_owner().await;
    let (hash, salt) = kiln::accounts::password::dify_legacy_hash("difypass123", b"0123456789abcdef");
    let url = format!("sqlite://{}", stack.dir.path().join("storage/kiln.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open sqlite");
    sqlx::query("UPDATE accounts SET password = $1, password_salt = $2")
        .bind(&hash)
        .bind(&salt)
        .execute(&pool)
        .await
        .expect("store a Dify hash");
    assert_eq!(browser.login(OWNER, "wrongpass1").await.0, 401);
    assert_eq!(browser.login(OWNER, "difypass123").await.0, 200);
    let (stored, stored_salt): (String, Option<String>) =
        sqlx::query_as("SELECT password, password_salt FROM accounts")
            .fetch_one(&pool)
            .await
            .expect("read back");
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert_eq!(stored_salt, None);
    assert_eq!(Browser::new(&stack.url).login(OWNER, "difypass123").await.0, 200, "still the same password");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_report_with_real_exit_codes() {
    let stack = Stack::sqlite(&[]).await;
    stack.setup_owner().await;
    let reset = |email: &str, pw: &str, confirm: &str| {
        output(stack.admin(&[
            "reset-password",
            "--email",
            email,
            "--new-password",
            pw,
            "--password-confirm",
            confirm,
        ]))
    };
    let (code, _, stderr) = reset("nobody@example.com", "abc12345", "abc12345");
    assert_eq!((code, stderr.trim()), (1, "Account not found for email: nobody@example.com"));
    let (code, _, stderr) = reset(OWNER, "abcdefgh", "abcdefgh");
    assert_eq!(code, 1);
    assert!(stderr.contains("Invalid password. Must match"), "{stderr}");
    let (code, _, stderr) = reset(OWNER, "abc12345", "abc12346");
    assert_eq!((code, stderr.trim()), (1, "Passwords do not match."));
    let (code, _, stderr) = output(stack.admin(&["reset-password", "--email", OWNER]));
    assert_eq!(code, 2, "no terminal and a missing option is a usage error");
    assert!(stderr.contains("--new-password"), "{stderr}");

    let (code, stdout, _) = output(stack.admin(&["create-tenant", "--email", "Second@Example.com"]));
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("Account and tenant created.\nAccount: second@example.com\nPassword: "),
        "{stdout}"
    );
    let (code, _, stderr) = output(stack.admin(&["create-tenant", "--email", "second@example.com"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "duplicate is a clear message: {stderr}");
    let (code, _, stderr) = output(stack.admin(&["create-tenant", "--email", "no-at-sign"]));
    assert_eq!((code, stderr.trim()), (1, "Invalid email address."));

    let email = |args: &[&str]| output(stack.admin(&[&["reset-email"], args].concat()));
    let (code, _, stderr) =
        email(&["--email", OWNER, "--new-email", "a@example.com", "--email-confirm", "b@example.com"]);
    assert_eq!((code, stderr.trim()), (1, "New emails do not match."));
    let (code, _, stderr) = email(&[
        "--email",
        OWNER,
        "--new-email",
        "second@example.com",
        "--email-confirm",
        "second@example.com",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, stdout, _) =
        email(&["--email", OWNER, "--new-email", "New@Example.com", "--email-confirm", "New@Example.com"]);
    assert_eq!((code, stdout.trim()), (0, "Email updated successfully."));

    let (code, stdout, _) = output(stack.admin(&["list-accounts"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("new@example.com")
            && stdout.contains("second@example.com")
            && stdout.contains("2 account(s)")
    );
    let (code, stdout, _) = output(stack.admin(&["list-tenants"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("Owner's Workspace") && stdout.contains("2 workspace(s)"), "{stdout}");

    // reset-encrypt-key-pair: refuses without --yes off a terminal; with it, new keys.
    let (code, _, _) = output(stack.admin(&["reset-encrypt-key-pair"]));
    assert_eq!(code, 2);
    let keys_dir = stack.dir.path().join("storage/privkeys");
    let read_keys = || {
        let mut keys: Vec<String> = std::fs::read_dir(&keys_dir)
            .expect("privkeys")
            .map(|e| std::fs::read_to_string(e.expect("entry").path().join("private.pem")).expect("pem"))
            .collect();
        keys.sort();
        keys
    };
    let before = read_keys();
    assert_eq!(before.len(), 2);
    let (code, stdout, _) = output(stack.admin(&["reset-encrypt-key-pair", "--yes"]));
    assert_eq!(code, 0);
    assert_eq!(stdout.matches("has been reset.").count(), 2, "{stdout}");
    assert!(stdout.contains("Invalidated:"), "{stdout}");
    let after = read_keys();
    assert!(before.iter().all(|k| !after.contains(k)), "every private key replaced");
    assert!(after.iter().all(|k| k.starts_with("-----BEGIN RSA PRIVATE KEY-----")));
}

#[test]
fn reset_password_prompts_on_a_terminal() {
    let dir = workdir();
    assert!(kiln(dir.path()).arg("upgrade-db").status().expect("migrate").success());
    let status =
        kiln(dir.path()).args(["create-tenant", "--email", "tty@example.com"]).status().expect("create");
    assert!(status.success());
    let binary = env!("CARGO_BIN_EXE_kiln");
    let command = format!(
        "env -i PATH=/usr/bin:/bin LOG_OUTPUT_FORMAT=json {binary} reset-password --email tty@example.com"
    );
    let mut session = rexpect::spawn_with_options(
        {
            let mut c = std::process::Command::new("sh");
            c.args(["-c", &command]).current_dir(dir.path());
            c
        },
        rexpect::reader::Options { timeout_ms: Some(30_000), strip_ansi_escape_codes: true },
    )
    .expect("spawn in a pty");
    session.exp_string("New password: ").expect("password prompt");
    session.send_line("pty12345pass").expect("type");
    session.exp_string("Confirm new password: ").expect("confirm prompt");
    session.send_line("pty12345pass").expect("type");
    session.exp_string("Password reset successfully.").expect("success");
    session.exp_eof().expect("exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_logins_and_guesses_are_handled() {
    let stack = Stack::postgres_redis(&[]).await;
    stack.setup_owner().await;
    // Parallel correct logins (two tabs, a double click): all succeed, and the one refresh
    // token per account is replaced, not duplicated into a 500.
    let logins: Vec<_> = (0..4)
        .map(|_| {
            let url = stack.url.clone();
            tokio::spawn(async move { Browser::new(&url).login(OWNER, PASSWORD).await.0 })
        })
        .collect();
    for login in logins {
        assert_eq!(login.await.expect("join"), 200);
    }
    // Parallel wrong guesses: at most five are ever checked; the rest are refused.
    let guesses: Vec<_> = (0..20)
        .map(|n| {
            let url = stack.url.clone();
            tokio::spawn(async move { Browser::new(&url).login(OWNER, &format!("wrong{n}pass")).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.expect("join"));
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 15), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_setups_leave_one_owner_and_say_already_setup() {
    let stack = Stack::postgres_redis(&[]).await;
    let setups: Vec<_> = (0..4)
        .map(|n| {
            let url = stack.url.clone();
            tokio::spawn(async move {
                let body =
                    json!({"email": format!("owner{n}@example.com"), "name": "Owner", "password": PASSWORD});
                Browser::new(&url).post("/console/api/setup", body).await
            })
        })
        .collect();
    let mut created = 0;
    for setup in setups {
        let (status, body) = setup.await.expect("join");
        match status {
            201 => created += 1,
            _ => assert_eq!((status, body["code"].as_str()), (403, Some("already_setup")), "{body}"),
        }
    }
    assert_eq!(created, 1);
    let (code, stdout, _) = output(stack.admin(&["list-accounts"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("1 account(s)"), "all or nothing: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_follow_the_configured_limit() {
    let stack = Stack::sqlite(&[("KILN_MAX_REQUEST_BODY_MB", "4")]).await;
    stack.setup_owner().await;
    // 3.3 MB (Base64 of 2.5 MB) is above axum's 2 MB default but within the setting.
    let big = "x".repeat(5 * 512 * 1024);
    let (status, body) = Browser::new(&stack.url).login(OWNER, &big).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("authentication_failed")), "{body}");
    // Over the setting, even without Content-Length (chunked): 413 in the envelope.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..6).map(|_| Ok(vec![b' '; 1024 * 1024])).collect();
    let response = common::http()
        .post(format!("{}/console/api/login", stack.url))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util_stream(chunks)))
        .send()
        .await;
    match response {
        Ok(response) => {
            assert_eq!(response.status(), 413);
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["code"], "request_entity_too_large");
        }
        // The server may answer and close before the client finishes streaming.
        Err(error) => assert!(error.is_request() || error.is_body(), "{error}"),
    }
}

fn futures_util_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    struct Chunks(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Chunks(chunks.into_iter())
}

fn code_in(message: &str) -> String {
    let start = message.find("reset code is: ").expect("code line") + "reset code is: ".len();
    message[start..start + 6].to_owned()
}

async fn forgot_password_flow(stack: &Stack, smtp: &common::SmtpStandIn) {
    stack.setup_owner().await;
    let mut browser = Browser::new(&stack.url);
    let (status, body) = browser.post("/console/api/forgot-password", json!({"email": OWNER})).await;
    assert_eq!(status, 200, "{body}");
    let token = body["data"].as_str().expect("token").to_owned();
    let (status, body) = browser.post("/console/api/forgot-password", json!({"email": OWNER})).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("password_reset_rate_limit_exceeded")));

    // The worker sends the code through the SMTP relay.
    let message = smtp.wait_for_message(1, Duration::from_secs(30)).await;
    assert!(
        message.contains("owner@example.com") && message.contains("Reset your Dify password"),
        "{message}"
    );
    let code = code_in(&message);
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let check = |code: &str, token: &str| json!({"email": OWNER, "code": code, "token": token});
    let (status, body) = browser.post("/console/api/forgot-password/validity", check(wrong, &token)).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("email_code_error")));
    let (status, body) = browser.post("/console/api/forgot-password/validity", check(&code, &token)).await;
    assert_eq!((status, &body["is_valid"]), (200, &json!(true)), "{body}");
    let reset = body["token"].as_str().expect("reset token").to_owned();
    let (status, body) = browser.post("/console/api/forgot-password/validity", check(&code, &token)).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_or_expired_token")), "a code works once");

    let resets = |a: &str, b: &str| json!({"token": reset, "new_password": a, "password_confirm": b});
    let (status, body) =
        browser.post("/console/api/forgot-password/resets", resets("n3wpass99", "n3wpass98")).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("password_mismatch")));
    let (status, body) =
        browser.post("/console/api/forgot-password/resets", resets("n3wpass99", "n3wpass99")).await;
    assert_eq!((status, &body), (200, &json!({"result": "success"})));
    let (status, _) =
        browser.post("/console/api/forgot-password/resets", resets("n3wpass99", "n3wpass99")).await;
    assert_eq!(status, 400, "a reset token works once");
    assert_eq!(Browser::new(&stack.url).login(OWNER, PASSWORD).await.0, 401);
    assert_eq!(Browser::new(&stack.url).login(OWNER, "n3wpass99").await.0, 200);

    // An unknown email gets a token too (no account enumeration) but no mail.
    let (status, _) =
        browser.post("/console/api/forgot-password", json!({"email": "nobody@example.com"})).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.count(), 1);
}

/// A SQLite stack whose mail goes to a fresh SMTP stand-in.
async fn mail_stack(extra: &[(&str, &str)]) -> (Stack, common::SmtpStandIn) {
    let smtp = common::SmtpStandIn::start().await;
    let env = mail_env(&smtp);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    (Stack::sqlite(&all).await, smtp)
}

fn mail_env(smtp: &common::SmtpStandIn) -> Vec<(&'static str, String)> {
    vec![
        ("MAIL_TYPE", "smtp".to_owned()),
        ("SMTP_SERVER", "127.0.0.1".to_owned()),
        ("SMTP_PORT", smtp.port.to_string()),
        ("MAIL_DEFAULT_SEND_FROM", "Kiln <no-reply@example.com>".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_mails_a_code_through_the_worker_on_sqlite() {
    let (stack, smtp) = mail_stack(&[]).await;
    forgot_password_flow(&stack, &smtp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_mails_a_code_through_the_worker_on_postgres_and_redis() {
    let smtp = common::SmtpStandIn::start().await;
    let env = mail_env(&smtp);
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stack = Stack::postgres_redis(&extra).await;
    forgot_password_flow(&stack, &smtp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_without_mail_says_so() {
    let stack = Stack::sqlite(&[]).await;
    stack.setup_owner().await;
    let (status, body) =
        Browser::new(&stack.url).post("/console/api/forgot-password", json!({"email": OWNER})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("mail_not_configured")));
    assert!(body["message"].as_str().is_some_and(|m| m.contains("kiln reset-password")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_list_change_and_remove_members() {
    let stack = Stack::sqlite(&[]).await;
    let mut owner = stack.setup_owner().await;
    assert_eq!(owner.login(OWNER, PASSWORD).await.0, 200);
    let (code, stdout, _) = output(stack.admin(&["create-tenant", "--email", "member@example.com"]));
    assert_eq!(code, 0);
    let password = stdout.lines().find_map(|l| l.strip_prefix("Password: ")).expect("password").to_owned();
    // Join the member to the owner's workspace as an editor (invitations add this row).
    let tenant = owner.get("/console/api/workspaces/current").await.1["id"].as_str().expect("id").to_owned();
    let url = format!("sqlite://{}", stack.dir.path().join("storage/kiln.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    let member: uuid::Uuid = sqlx::query_scalar("SELECT id FROM accounts WHERE email = 'member@example.com'")
        .fetch_one(&pool)
        .await
        .expect("id");
    sqlx::query(
        "INSERT INTO tenant_account_joins (id, tenant_id, account_id, role, current, created_at, updated_at) \
         VALUES ($1, $2, $3, 'editor', FALSE, $4, $4)",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(tenant.parse::<uuid::Uuid>().expect("uuid"))
    .bind(member)
    .bind(chrono::Utc::now())
    .execute(&pool)
    .await
    .expect("join");
    pool.close().await;

    let (status, body) = owner.get("/console/api/workspaces/current/members").await;
    assert_eq!(status, 200);
    let roles: Vec<(String, String)> = body["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| (a["email"].as_str().unwrap_or("").to_owned(), a["role"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(
        roles,
        [
            ("owner@example.com".to_owned(), "owner".to_owned()),
            ("member@example.com".to_owned(), "editor".to_owned())
        ]
    );

    let member_path = format!("/console/api/workspaces/current/members/{member}");
    let role = |r: &str| json!({"role": r});
    let (status, body) = owner
        .send(reqwest::Method::PUT, &format!("{member_path}/update-role"), Some(role("owner")), true)
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid-role")));
    let (status, _) = owner
        .send(reqwest::Method::PUT, &format!("{member_path}/update-role"), Some(role("admin")), true)
        .await;
    assert_eq!(status, 200);
    let owner_id = owner.get("/console/api/account/profile").await.1["id"].as_str().expect("id").to_owned();
    let (status, body) = owner
        .send(
            reqwest::Method::DELETE,
            &format!("/console/api/workspaces/current/members/{owner_id}"),
            None,
            true,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("cannot-operate-self")));

    // The member (now admin, but acting in their own workspace) cannot touch the owner's.
    let mut other = Browser::new(&stack.url);
    assert_eq!(other.login("member@example.com", &password).await.0, 200);
    let (status, _) = other
        .send(
            reqwest::Method::DELETE,
            &format!("/console/api/workspaces/current/members/{owner_id}"),
            None,
            true,
        )
        .await;
    assert_eq!(status, 404, "the owner is not a member of the other workspace");

    let (status, body) = owner.send(reqwest::Method::DELETE, &member_path, None, true).await;
    assert_eq!((status, body["tenant_id"].as_str()), (200, Some(tenant.as_str())));
    let (status, body) = owner.send(reqwest::Method::DELETE, &member_path, None, true).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("member-not-found")));
    assert_eq!(
        owner.get("/console/api/workspaces/current/members").await.1["accounts"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invited_people_get_a_mail_activate_and_sign_in() {
    let (stack, smtp) = mail_stack(&[("CONSOLE_WEB_URL", "http://console.example.com")]).await;
    let mut owner = stack.setup_owner().await;
    assert_eq!(owner.login(OWNER, PASSWORD).await.0, 200);

    let invite = |emails: serde_json::Value, role: &str| json!({"emails": emails, "role": role});
    let (status, body) = owner
        .post(
            "/console/api/workspaces/current/members/invite-email",
            invite(json!(["x@example.com"]), "owner"),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid-role")));
    let (status, body) = owner
        .post(
            "/console/api/workspaces/current/members/invite-email",
            invite(json!(["New.Person@Example.com", "not-an-email", OWNER]), "editor"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let results = body["invitation_results"].as_array().expect("results");
    assert_eq!(results[0]["email"], "new.person@example.com");
    let url = results[0]["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with("http://console.example.com/activate?email=new.person%40example.com&token="),
        "{url}"
    );
    assert_eq!(
        (results[1]["status"].as_str(), results[1]["message"].as_str()),
        (Some("failed"), Some("Invalid email"))
    );
    assert_eq!(results[2]["url"], "http://console.example.com/signin", "already a member");

    let message = smtp.wait_for_message(1, Duration::from_secs(30)).await;
    assert!(
        message.contains("new.person@example.com") && message.contains("Join Owner's Workspace on Dify"),
        "{message}"
    );
    let token = url.rsplit("token=").next().expect("token").to_owned();
    let tenant = owner.get("/console/api/workspaces/current").await.1["id"].as_str().expect("id").to_owned();

    let mut guest = Browser::new(&stack.url);
    let (status, body) = guest
        .get(&format!(
            "/console/api/activate/check?workspace_id={tenant}&email=new.person%40example.com&token={token}"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["is_valid"], true, "{body}");
    assert_eq!(body["data"]["workspace_name"], "Owner's Workspace");
    let (_, body) =
        guest.get(&format!("/console/api/activate/check?workspace_id={tenant}&token=wrong")).await;
    assert_eq!(body, json!({"is_valid": false}));

    let activation = json!({"workspace_id": tenant, "email": "new.person@example.com", "token": token,
        "name": "New Person", "interface_language": "en-US", "timezone": "UTC", "password": "welcome123"});
    let (status, body) = guest.post("/console/api/activate", activation.clone()).await;
    assert_eq!((status, &body), (200, &json!({"result": "success"})));
    let (status, body) = guest.post("/console/api/activate", activation).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("already_activate")), "a token works once");

    assert_eq!(guest.login("new.person@example.com", "welcome123").await.0, 200);
    let (_, me) = guest.get("/console/api/workspaces/current").await;
    assert_eq!((me["name"].as_str(), me["role"].as_str()), (Some("Owner's Workspace"), Some("editor")));
    let (_, members) = owner.get("/console/api/workspaces/current/members").await;
    let statuses: Vec<&str> = members["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert_eq!(statuses, ["active", "active"]);
    // Only owners and admins invite.
    let (status, _) = guest
        .post(
            "/console/api/workspaces/current/members/invite-email",
            invite(json!(["y@example.com"]), "normal"),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_reset_code_guesses_stop_at_five() {
    let (stack, smtp) = mail_stack(&[]).await;
    stack.setup_owner().await;
    let (status, body) =
        Browser::new(&stack.url).post("/console/api/forgot-password", json!({"email": OWNER})).await;
    assert_eq!(status, 200);
    let token = body["data"].as_str().expect("token").to_owned();
    let code = code_in(&smtp.wait_for_message(1, Duration::from_secs(30)).await);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let guesses: Vec<_> = (0..10)
        .map(|_| {
            let (url, token) = (stack.url.clone(), token.clone());
            tokio::spawn(async move {
                let body = json!({"email": OWNER, "code": wrong, "token": token});
                Browser::new(&url).post("/console/api/forgot-password/validity", body).await.0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.expect("join"));
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429, 429, 429, 429, 429]);
    // Locked now, even with the right code.
    let body = json!({"email": OWNER, "code": code, "token": token});
    let (status, reply) = Browser::new(&stack.url).post("/console/api/forgot-password/validity", body).await;
    assert_eq!((status, reply["code"].as_str()), (429, Some("email_password_reset_limit")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_code_login_signs_in_with_the_mailed_code() {
    let (disabled, _smtp_unused) = mail_stack(&[]).await;
    disabled.setup_owner().await;
    let (status, body) =
        Browser::new(&disabled.url).post("/console/api/email-code-login", json!({"email": OWNER})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("email_code_login_disabled")));

    let (stack, smtp) = mail_stack(&[("ENABLE_EMAIL_CODE_LOGIN", "true")]).await;
    stack.setup_owner().await;
    let mut browser = Browser::new(&stack.url);
    let (status, body) =
        browser.post("/console/api/email-code-login", json!({"email": "ghost@example.com"})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("account_not_found")));
    let (status, body) = browser.post("/console/api/email-code-login", json!({"email": OWNER})).await;
    assert_eq!(status, 200, "{body}");
    let token = body["data"].as_str().expect("token").to_owned();
    let message = smtp.wait_for_message(1, Duration::from_secs(30)).await;
    let start = message.find("sign-in code is: ").expect("code") + "sign-in code is: ".len();
    let code = message[start..start + 6].to_owned();
    use base64::Engine;
    let encode = |c: &str| base64::engine::general_purpose::STANDARD.encode(c);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let check = |c: &str| json!({"email": OWNER, "code": encode(c), "token": token});
    let (status, body) = browser.post("/console/api/email-code-login/validity", check(wrong)).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("email_code_error")));
    let (status, body) = browser.post("/console/api/email-code-login/validity", check(&code)).await;
    assert_eq!((status, &body), (200, &json!({"result": "success"})));
    assert!(browser.cookies.contains_key("access_token") && browser.cookies.contains_key("csrf_token"));
    assert_eq!(browser.get("/console/api/account/profile").await.1["email"], "owner@example.com");
    let (status, _) = browser.post("/console/api/email-code-login/validity", check(&code)).await;
    assert_eq!(status, 400, "a code works once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_mails_are_limited_per_client_ip_then_the_ip_is_frozen() {
    let (stack, _smtp) =
        mail_stack(&[("EMAIL_SEND_IP_LIMIT_PER_MINUTE", "2"), ("ENABLE_EMAIL_CODE_LOGIN", "true")]).await;
    stack.setup_owner().await;
    let client = common::http();
    let ask = |path: &'static str, email: String, forwarded: Option<&'static str>| {
        let mut request = client.post(format!("{}{path}", stack.url)).json(&json!({"email": email}));
        if let Some(ip) = forwarded {
            request = request.header("X-Forwarded-For", format!("{ip}, 10.0.0.1"));
        }
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.expect("json"))
        }
    };
    // Different emails, so the per-email limit is not what stops the third: the TCP peer
    // (127.0.0.1) is the client here.
    for n in 0..2 {
        let (status, body) = ask("/console/api/forgot-password", format!("user{n}@example.com"), None).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = ask("/console/api/forgot-password", "user9@example.com".into(), None).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("email_send_ip_limit")), "{body}");
    // Frozen for every code mail, sign-in codes included.
    let (status, body) = ask("/console/api/email-code-login", OWNER.to_lowercase(), None).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("email_send_ip_limit")), "{body}");
    // A client behind the proxy is counted by its forwarded address, not the proxy's.
    let (status, body) =
        ask("/console/api/forgot-password", "user5@example.com".into(), Some("203.0.113.7")).await;
    assert_eq!(status, 200, "{body}");
}
