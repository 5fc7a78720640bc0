//! Storage on S3 through OpenDAL, against a local S3 stand-in (moto's server), with the
//! production S3 client unchanged.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Browser, KilnProcess, kiln, workdir};
use serde_json::json;

/// A moto S3 server on a free port, stopped on drop.
struct S3StandIn {
    child: Child,
    endpoint: String,
}

impl S3StandIn {
    fn start() -> Self {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto (pip install 'moto[server]'; ./scripts/test does it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    async fn create_bucket(&self, bucket: &str) {
        let response =
            common::http().put(format!("{}/{bucket}", self.endpoint)).send().await.expect("PUT bucket");
        assert!(response.status().is_success(), "create bucket: {}", response.status());
    }

    /// The size of an object, from the bucket listing (objects themselves are private).
    async fn object_size(&self, bucket: &str, key: &str) -> Option<u64> {
        let listing = self.keys(bucket).await;
        let rest = &listing[listing.find(&format!("<Key>{key}</Key>"))?..];
        let size = &rest[rest.find("<Size>")? + "<Size>".len()..];
        size[..size.find('<')?].parse().ok()
    }

    async fn keys(&self, bucket: &str) -> String {
        common::get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .await
            .expect("list")
            .text()
            .await
            .expect("xml")
    }
}

impl Drop for S3StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opendal_s3_holds_the_secret_key_and_tenant_keys() {
    let s3 = S3StandIn::start();
    s3.create_bucket("kiln-files").await;
    let dir = workdir();
    let mut command = kiln(dir.path());
    command
        .env("OPENDAL_SCHEME", "s3")
        .env("OPENDAL_S3_BUCKET", "kiln-files")
        .env("OPENDAL_S3_ENDPOINT", &s3.endpoint)
        .env("OPENDAL_S3_REGION", "us-east-1")
        .env("OPENDAL_S3_ACCESS_KEY_ID", "testing")
        .env("OPENDAL_S3_SECRET_ACCESS_KEY", "testing");
    let mut server = KilnProcess::spawn(command);
    let url = server.wait_until_serving();
    let ready: serde_json::Value =
        common::get(format!("{url}/ready")).await.expect("ready").json().await.expect("json");
    assert_eq!(ready["status"], "ok", "{ready}");

    let size = s3.object_size("kiln-files", ".dify_secret_key").await;
    assert_eq!(size, Some(65), "generated key (64 characters and a newline) stored in the bucket");
    assert!(!dir.path().join("storage/.dify_secret_key").exists(), "nothing written to the local disk");

    let mut browser = Browser::new(&url);
    let (status, body) = browser
        .post("/console/api/setup", json!({"email": "s3@example.com", "name": "S3", "password": "abc12345"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(browser.login("s3@example.com", "abc12345").await.0, 200);
    let tenant =
        browser.get("/console/api/workspaces/current").await.1["id"].as_str().expect("id").to_owned();
    let pem = s3.object_size("kiln-files", &format!("privkeys/{tenant}/private.pem")).await;
    assert!(pem.is_some_and(|size| size > 1500), "RSA-2048 PEM expected: {}", s3.keys("kiln-files").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn difys_native_s3_settings_work_too() {
    let s3 = S3StandIn::start();
    s3.create_bucket("difyai").await;
    let dir = workdir();
    let mut command = kiln(dir.path());
    command
        .env("STORAGE_TYPE", "s3")
        .env("S3_ENDPOINT", &s3.endpoint)
        .env("S3_ACCESS_KEY", "testing")
        .env("S3_SECRET_KEY", "testing");
    let mut server = KilnProcess::spawn(command);
    server.wait_until_serving();
    assert_eq!(s3.object_size("difyai", ".dify_secret_key").await, Some(65));
}

#[test]
fn half_configured_s3_credentials_are_a_config_error() {
    let dir = workdir();
    let output = kiln(dir.path())
        .args(["config", "check"])
        .env("OPENDAL_SCHEME", "s3")
        .env("OPENDAL_S3_ACCESS_KEY_ID", "AKIA")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("OPENDAL_S3_BUCKET=\"\" (from default)"), "{stdout}");
    assert!(stdout.contains("OPENDAL_S3_SECRET_ACCESS_KEY="), "{stdout}");
}
