//! What the benchmark drivers share (included with `#[path]`: each driver is its own example).

use base64::Engine;
use serde_json::{Value, json};

/// Sets up the owner of a fresh kiln at `url`, signs in and creates a dataset API key.
pub async fn api_key(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let (email, password) = ("bench@example.com", "benchpass1");
    let setup = client
        .post(format!("{url}/console/api/setup"))
        .json(&json!({"email": email, "name": "Bench", "password": password}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if setup.status() != 201 {
        return Err(format!("setup answered {}", setup.status()));
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(password);
    let login = client
        .post(format!("{url}/console/api/login"))
        .json(&json!({"email": email, "password": encoded}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut cookies = Vec::new();
    let mut csrf = String::new();
    for value in login.headers().get_all("set-cookie") {
        let pair = value.to_str().unwrap_or_default().split(';').next().unwrap_or_default().to_owned();
        if let Some(token) = pair.strip_prefix("csrf_token=") {
            csrf = token.to_owned();
        }
        cookies.push(pair);
    }
    let key = client
        .post(format!("{url}/console/api/datasets/api-keys"))
        .header("Cookie", cookies.join("; "))
        .header("X-CSRF-Token", csrf)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = key.json().await.map_err(|e| e.to_string())?;
    body["token"].as_str().map(str::to_owned).ok_or_else(|| format!("no key: {body}"))
}
