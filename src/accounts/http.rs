//! Console API routes for setup, login, tokens, profile and workspace (Dify-compatible).

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::model::{Account, Membership};
use super::service::{Accounts, AccountsError, Session};
use super::tokens::Passport;
use crate::config::Settings;
use crate::http::AppState;
use crate::http::client_ip::ClientIp;
use crate::http::error::{ApiError, JsonBody};
use crate::http::openapi::{ConsoleErrors, ErrorBody, Success};

/// Cookie names, as Dify sets them.
pub const ACCESS_COOKIE: &str = "access_token";
pub const REFRESH_COOKIE: &str = "refresh_token";
pub const CSRF_COOKIE: &str = "csrf_token";
/// kiln's record that the INIT_PASSWORD step passed (Dify keeps it in its session cookie).
pub const INIT_COOKIE: &str = "init_validated";
const INIT_SUBJECT: &str = "init-validated";

impl From<AccountsError> for ApiError {
    fn from(error: AccountsError) -> Self {
        use AccountsError as E;
        let (status, code) = match &error {
            E::AccountNotFound(_) => (StatusCode::NOT_FOUND, "account_not_found"),
            E::InvalidEmail(_) => (StatusCode::BAD_REQUEST, "invalid_email"),
            E::EmailTaken(_) => (StatusCode::BAD_REQUEST, "email_already_in_use"),
            E::Policy(_) | E::InvalidParam(_) => (StatusCode::BAD_REQUEST, "invalid_param"),
            E::PasswordMismatch => (StatusCode::BAD_REQUEST, "password_mismatch"),
            E::EmailMismatch => (StatusCode::BAD_REQUEST, "invalid_email"),
            E::AlreadySetup => (StatusCode::FORBIDDEN, "already_setup"),
            E::NotSetup => (StatusCode::UNAUTHORIZED, "not_setup"),
            E::NotInitValidated => (StatusCode::UNAUTHORIZED, "not_init_validated"),
            E::InitValidateFailed => (StatusCode::UNAUTHORIZED, "init_validate_failed"),
            E::InvalidCredentials => (StatusCode::UNAUTHORIZED, "authentication_failed"),
            E::LockedOut => (StatusCode::TOO_MANY_REQUESTS, "email_code_login_limit"),
            E::Banned => (StatusCode::UNAUTHORIZED, "account_banned"),
            E::NoWorkspace => (StatusCode::BAD_REQUEST, "workspace_not_found"),
            E::InvalidToken => (StatusCode::UNAUTHORIZED, "unauthorized"),
            E::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            E::AlreadyActivated => (StatusCode::FORBIDDEN, "already_activate"),
            E::EmailCodeLoginDisabled => (StatusCode::FORBIDDEN, "email_code_login_disabled"),
            E::EmailCodeRateLimited => {
                (StatusCode::TOO_MANY_REQUESTS, "email_code_login_rate_limit_exceeded")
            }
            E::EmailCodeLockedOut => (StatusCode::TOO_MANY_REQUESTS, "email_code_login_limit"),
            E::CannotOperateSelf => (StatusCode::BAD_REQUEST, "cannot-operate-self"),
            E::MemberNotFound => (StatusCode::NOT_FOUND, "member-not-found"),
            E::InvalidRole => (StatusCode::BAD_REQUEST, "invalid-role"),
            E::MailNotConfigured => (StatusCode::BAD_REQUEST, "mail_not_configured"),
            E::QueueUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            E::ResetRateLimited => (StatusCode::TOO_MANY_REQUESTS, "password_reset_rate_limit_exceeded"),
            E::EmailSendIpLimited => (StatusCode::TOO_MANY_REQUESTS, "email_send_ip_limit"),
            E::ResetLockedOut => (StatusCode::TOO_MANY_REQUESTS, "email_password_reset_limit"),
            E::CodeMismatch => (StatusCode::BAD_REQUEST, "email_code_error"),
            E::InvalidOrExpiredToken => (StatusCode::BAD_REQUEST, "invalid_or_expired_token"),
            E::Hash(_) | E::Keys(_) | E::Repo(_) | E::Token(_) => {
                tracing::error!(%error, "account operation failed");
                return ApiError::Internal;
            }
        };
        ApiError::coded(status, code, error.to_string())
    }
}

fn accounts(state: &AppState) -> Accounts<'_> {
    Accounts { db: &state.db, storage: &state.storage, auth: &state.auth, settings: &state.settings }
}

/// Whether cookies must be Secure: both console URLs are https (Dify's `is_secure()`).
pub fn is_secure(settings: &Settings) -> bool {
    let https =
        |url: &Option<crate::config::value::HttpUrl>| url.as_ref().is_some_and(|u| u.0.scheme() == "https");
    https(&settings.server.console_web_url) && https(&settings.server.console_api_url)
}

/// The cookie name as sent: `__Host-` prefixed on https without a shared cookie domain.
pub fn cookie_name(settings: &Settings, base: &str) -> String {
    if is_secure(settings) && settings.auth.cookie_domain.trim().is_empty() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn set_cookie(
    settings: &Settings,
    base: &str,
    value: &str,
    max_age: Duration,
    http_only: bool,
) -> HeaderValue {
    let mut cookie = cookie::Cookie::new(cookie_name(settings, base), value.to_owned());
    cookie.set_path("/");
    cookie.set_http_only(http_only);
    cookie.set_secure(is_secure(settings));
    cookie.set_same_site(cookie::SameSite::Lax);
    cookie.set_max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64));
    let domain = settings.auth.cookie_domain.trim().trim_start_matches('.');
    if !domain.is_empty() {
        cookie.set_domain(domain.to_owned());
    }
    // A cookie built from our own names and URL-safe token strings is always a valid header.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn session_cookies(settings: &Settings, session: &Session) -> Vec<(header::HeaderName, HeaderValue)> {
    let access = Duration::from_secs(u64::from(settings.auth.access_token_expire_minutes.0) * 60);
    let refresh = settings.auth.refresh_token_expire_days.duration();
    vec![
        (header::SET_COOKIE, set_cookie(settings, ACCESS_COOKIE, &session.access_token, access, true)),
        (header::SET_COOKIE, set_cookie(settings, REFRESH_COOKIE, &session.refresh_token, refresh, true)),
        (header::SET_COOKIE, set_cookie(settings, CSRF_COOKIE, &session.csrf_token, access, false)),
    ]
}

fn cleared_cookies(settings: &Settings) -> Vec<(header::HeaderName, HeaderValue)> {
    [(ACCESS_COOKIE, true), (REFRESH_COOKIE, true), (CSRF_COOKIE, false)]
        .into_iter()
        .map(|(name, http_only)| {
            (header::SET_COOKIE, set_cookie(settings, name, "", Duration::ZERO, http_only))
        })
        .collect()
}

/// A cookie's value from the request, by its real (possibly prefixed) name.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

fn with_cookies(
    body: Value,
    status: StatusCode,
    cookies: Vec<(header::HeaderName, HeaderValue)>,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    for (name, value) in cookies {
        response.headers_mut().append(name, value);
    }
    response
}

fn ts(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp()
}

/// The signed-in console user, checked as Dify's `login_required` does: access token from the
/// cookie or `Authorization: Bearer`, and `X-CSRF-Token` on every method but OPTIONS.
pub struct ConsoleSession {
    pub account: Account,
    pub membership: Membership,
}

impl FromRequestParts<AppState> for ConsoleSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let settings = &state.settings;
        let unauthorized = |message: &str| ApiError::coded(StatusCode::UNAUTHORIZED, "unauthorized", message);
        let token = read_cookie(&parts.headers, &cookie_name(settings, ACCESS_COOKIE)).or_else(|| {
            parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|t| t.trim().to_owned())
        });
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(unauthorized("Invalid Authorization token."));
        };
        let passport = Passport::new(&state.secret_key);
        let account_id =
            passport.verify_access(&token).map_err(|_| unauthorized("Invalid Authorization token."))?;
        if parts.method != Method::OPTIONS {
            check_csrf(parts, settings, &passport, account_id)?;
        }
        let (account, membership) = accounts(state).authenticate(account_id).await?;
        Ok(Self { account, membership })
    }
}

fn check_csrf(
    parts: &Parts,
    settings: &Settings,
    passport: &Passport,
    account_id: Uuid,
) -> Result<(), ApiError> {
    let invalid =
        || ApiError::coded(StatusCode::UNAUTHORIZED, "unauthorized", "CSRF token is missing or invalid.");
    let header = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).ok_or_else(invalid)?;
    if let Some(cookie) = read_cookie(&parts.headers, &cookie_name(settings, CSRF_COOKIE))
        && cookie != header
    {
        return Err(invalid());
    }
    match passport.verify_subject(header) {
        Ok(subject) if subject == account_id.to_string() => Ok(()),
        _ => Err(invalid()),
    }
}

/// The console routes this feature owns (mounted under `/console/api`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(init_status, init_validate))
        .routes(routes!(setup_status, setup))
        .routes(routes!(login))
        .routes(routes!(refresh_token))
        .routes(routes!(logout))
        .routes(routes!(profile))
        .routes(routes!(current_workspace, current_workspace_get))
        .routes(routes!(rename_workspace))
        .routes(routes!(rename_workspace_info))
        .routes(routes!(list_members))
        .routes(routes!(remove_member))
        .routes(routes!(update_member_role))
        .routes(routes!(invite_members))
        .routes(routes!(activate_check))
        .routes(routes!(activate))
        .routes(routes!(email_code_login))
        .routes(routes!(email_code_login_validity))
        .routes(routes!(forgot_password))
        .routes(routes!(forgot_password_validity))
        .routes(routes!(forgot_password_resets))
}

/// The GET form of `/workspaces/current`.
#[utoipa::path(get, path = "/workspaces/current", tag = "console workspace", security(("console_token" = [])),
    responses((status = 200, description = "The current workspace", body = serde_json::Value), ConsoleErrors))]
async fn current_workspace_get(session: ConsoleSession) -> Json<Value> {
    current_workspace(session).await
}

/// Dify's other path for renaming the workspace.
#[utoipa::path(post, path = "/workspaces/info", tag = "console workspace", security(("console_token" = [])),
    request_body = RenameRequest,
    responses((status = 200, description = "`{result: success, tenant}`", body = serde_json::Value), ConsoleErrors))]
async fn rename_workspace_info(
    state: State<AppState>,
    session: ConsoleSession,
    body: JsonBody<RenameRequest>,
) -> Result<Json<Value>, ApiError> {
    rename_workspace(state, session, body).await
}

fn init_passed(state: &AppState, headers: &HeaderMap) -> bool {
    if state.settings.auth.init_password.is_none() {
        return true;
    }
    read_cookie(headers, INIT_COOKIE)
        .and_then(|token| Passport::new(&state.secret_key).verify_subject(&token).ok())
        .is_some_and(|subject| subject == INIT_SUBJECT)
}

#[utoipa::path(get, path = "/init", tag = "console auth",
    responses((status = 200, description = "`{status: finished | not_started}`: whether INIT_PASSWORD was passed or set-up is done", body = serde_json::Value)))]
async fn init_status(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let finished = init_passed(&state, &headers) || accounts(&state).setup_at().await?.is_some();
    Ok(Json(json!({ "status": if finished { "finished" } else { "not_started" } })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct InitRequest {
    password: String,
}

/// Checks INIT_PASSWORD; sets the cookie set-up needs.
#[utoipa::path(post, path = "/init", tag = "console auth", request_body = InitRequest,
    responses((status = 201, body = Success), ConsoleErrors))]
async fn init_validate(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<InitRequest>,
) -> Result<Response, ApiError> {
    if body.password.chars().count() > 30 {
        return Err(ApiError::coded(
            StatusCode::BAD_REQUEST,
            "invalid_param",
            "password must be at most 30 characters.",
        ));
    }
    accounts(&state).validate_init(&body.password).await?;
    let token = Passport::new(&state.secret_key)
        .subject_token(INIT_SUBJECT, Duration::from_secs(3600))
        .map_err(AccountsError::from)?;
    let mut cookie = cookie::Cookie::new(INIT_COOKIE, token);
    cookie.set_path("/");
    cookie.set_http_only(true);
    cookie.set_same_site(cookie::SameSite::Lax);
    cookie.set_secure(is_secure(&state.settings));
    let value = HeaderValue::from_str(&cookie.to_string()).map_err(|_| ApiError::Internal)?;
    Ok(with_cookies(json!({"result": "success"}), StatusCode::CREATED, vec![(header::SET_COOKIE, value)]))
}

#[utoipa::path(get, path = "/setup", tag = "console auth",
    responses((status = 200, description = "`{step: finished, setup_at}` or `{step: not_started}`", body = serde_json::Value)))]
async fn setup_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(match accounts(&state).setup_at().await? {
        Some(at) => json!({ "step": "finished", "setup_at": at.to_rfc3339() }),
        None => json!({ "step": "not_started" }),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct SetupRequest {
    email: String,
    name: String,
    password: String,
    language: Option<String>,
}

/// Creates the owner account and the first workspace (once).
#[utoipa::path(post, path = "/setup", tag = "console auth", request_body = SetupRequest,
    responses((status = 201, body = Success), (status = 403, description = "`already_setup` or `not_init_validated`", body = ErrorBody), ConsoleErrors))]
async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SetupRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let accounts = accounts(&state);
    if accounts.is_setup().await? {
        return Err(AccountsError::AlreadySetup.into());
    }
    if !init_passed(&state, &headers) {
        return Err(AccountsError::NotInitValidated.into());
    }
    accounts.setup(&body.email, &body.name, &body.password, body.language.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(json!({"result": "success"}))))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct LoginRequest {
    email: String,
    /// Base64 of the password, as Dify's web client sends it.
    password: String,
    #[serde(default)]
    remember_me: bool,
}

/// Signs in (the password Base64-encoded, as Dify's web client sends it); sets the
/// access, refresh and CSRF cookies.
#[utoipa::path(post, path = "/login", tag = "console auth", request_body = LoginRequest,
    responses((status = 200, body = Success), (status = 429, description = "Too many failed attempts", body = ErrorBody), ConsoleErrors))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let _ = body.remember_me; // accepted for compatibility; cookie lifetimes come from config
    let password = base64::engine::general_purpose::STANDARD
        .decode(body.password.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            ApiError::coded(StatusCode::UNAUTHORIZED, "authentication_failed", "Invalid encrypted data")
        })?;
    let accounts = accounts(&state);
    let account = match accounts.login(&body.email, &password, ip.as_deref()).await {
        Ok(account) => account,
        Err(AccountsError::NoWorkspace) => {
            let message = AccountsError::NoWorkspace.to_string();
            return Ok(Json(json!({"result": "fail", "data": message})).into_response());
        }
        Err(error) => return Err(error.into()),
    };
    let session = accounts.issue_session(account.id, &state.secret_key).await?;
    Ok(with_cookies(json!({"result": "success"}), StatusCode::OK, session_cookies(&state.settings, &session)))
}

/// Rotates the refresh token cookie and issues a new access token.
#[utoipa::path(post, path = "/refresh-token", tag = "console auth",
    responses((status = 200, body = Success), (status = 401, description = "`{result: fail, message}`", body = serde_json::Value)))]
async fn refresh_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let fail = |message: &str| {
        (StatusCode::UNAUTHORIZED, Json(json!({"result": "fail", "message": message}))).into_response()
    };
    let Some(token) =
        read_cookie(&headers, &cookie_name(&state.settings, REFRESH_COOKIE)).filter(|t| !t.is_empty())
    else {
        return fail("No refresh token provided");
    };
    match accounts(&state).refresh(&token, &state.secret_key).await {
        Ok(session) => with_cookies(
            json!({"result": "success"}),
            StatusCode::OK,
            session_cookies(&state.settings, &session),
        ),
        Err(error) => fail(&error.to_string()),
    }
}

#[utoipa::path(post, path = "/logout", tag = "console auth",
    responses((status = 200, body = Success)))]
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let settings = &state.settings;
    let account = read_cookie(&headers, &cookie_name(settings, ACCESS_COOKIE))
        .and_then(|token| Passport::new(&state.secret_key).verify_access(&token).ok());
    if let Some(account_id) = account {
        state.auth.revoke_account(account_id).await.map_err(AccountsError::from)?;
    } else if let Some(refresh) = read_cookie(&headers, &cookie_name(settings, REFRESH_COOKIE)) {
        state.auth.take_refresh(&refresh).await.map_err(AccountsError::from)?;
    }
    Ok(with_cookies(json!({"result": "success"}), StatusCode::OK, cleared_cookies(settings)))
}

#[utoipa::path(get, path = "/account/profile", tag = "console auth", security(("console_token" = [])),
    responses((status = 200, description = "Dify's account fields: id, name, email, avatar, interface_language, timezone, …", body = serde_json::Value), ConsoleErrors))]
async fn profile(session: ConsoleSession) -> Json<Value> {
    let a = &session.account;
    Json(json!({
        "id": a.id,
        "name": a.name,
        "avatar": a.avatar,
        "avatar_url": Value::Null,
        "email": a.email,
        "is_password_set": a.password.is_some(),
        "interface_language": a.interface_language,
        "interface_theme": a.interface_theme,
        "timezone": a.timezone,
        "last_login_at": a.last_login_at.map(ts),
        "last_login_ip": a.last_login_ip,
        "created_at": ts(a.created_at),
    }))
}

fn workspace_json(membership: &Membership) -> Value {
    let t = &membership.tenant;
    json!({
        "id": t.id,
        "name": t.name,
        "plan": t.plan,
        "status": t.status,
        "created_at": ts(t.created_at),
        "role": membership.role.as_str(),
        "in_trial": Value::Null,
        "trial_end_reason": Value::Null,
        "custom_config": {},
    })
}

#[utoipa::path(post, path = "/workspaces/current", tag = "console workspace", security(("console_token" = [])),
    responses((status = 200, description = "The current workspace: id, name, plan, status, role, created_at, …", body = serde_json::Value), ConsoleErrors))]
async fn current_workspace(session: ConsoleSession) -> Json<Value> {
    Json(workspace_json(&session.membership))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RenameRequest {
    name: String,
}

#[utoipa::path(post, path = "/workspaces/current/name", tag = "console workspace", security(("console_token" = [])), request_body = RenameRequest,
    responses((status = 200, description = "`{result: success, tenant}`", body = serde_json::Value), ConsoleErrors))]
async fn rename_workspace(
    State(state): State<AppState>,
    session: ConsoleSession,
    JsonBody(body): JsonBody<RenameRequest>,
) -> Result<Json<Value>, ApiError> {
    accounts(&state).rename_workspace(&session.membership, &body.name).await?;
    let mut membership = session.membership;
    membership.tenant.name = body.name.trim().to_owned();
    Ok(Json(json!({"result": "success", "tenant": workspace_json(&membership)})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ForgotRequest {
    email: String,
    language: Option<String>,
}

/// Mails a reset code; answers the token the code goes with.
#[utoipa::path(post, path = "/forgot-password", tag = "console auth", request_body = ForgotRequest,
    responses((status = 200, description = "`{result: success, data: token}`", body = serde_json::Value), (status = 429, body = ErrorBody), ConsoleErrors))]
async fn forgot_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<ForgotRequest>,
) -> Result<Json<Value>, ApiError> {
    let token = accounts(&state)
        .forgot_password(&body.email, body.language.as_deref(), ip.as_deref(), state.jobs.get())
        .await?;
    Ok(Json(json!({"result": "success", "data": token})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ValidityRequest {
    email: String,
    code: String,
    token: String,
}

#[utoipa::path(post, path = "/forgot-password/validity", tag = "console auth", request_body = ValidityRequest,
    responses((status = 200, description = "`{is_valid, email, token}`", body = serde_json::Value), ConsoleErrors))]
async fn forgot_password_validity(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ValidityRequest>,
) -> Result<Json<Value>, ApiError> {
    let (email, token) = accounts(&state).check_reset_code(&body.email, &body.code, &body.token).await?;
    Ok(Json(json!({"is_valid": true, "email": email, "token": token})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ResetsRequest {
    token: String,
    new_password: String,
    password_confirm: String,
}

#[utoipa::path(post, path = "/forgot-password/resets", tag = "console auth", request_body = ResetsRequest,
    responses((status = 200, body = Success), ConsoleErrors))]
async fn forgot_password_resets(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ResetsRequest>,
) -> Result<Json<Value>, ApiError> {
    accounts(&state).reset_with_token(&body.token, &body.new_password, &body.password_confirm).await?;
    Ok(Json(json!({"result": "success"})))
}

#[utoipa::path(get, path = "/workspaces/current/members", tag = "console workspace", security(("console_token" = [])),
    responses((status = 200, description = "`{result: success, accounts: [{id, name, email, role, status, …}]}`", body = serde_json::Value), ConsoleErrors))]
async fn list_members(
    State(state): State<AppState>,
    session: ConsoleSession,
) -> Result<Json<Value>, ApiError> {
    let members = accounts(&state).members(&session.membership).await?;
    let accounts: Vec<Value> = members
        .into_iter()
        .map(|m| {
            json!({
                "id": m.id,
                "name": m.name,
                "avatar": m.avatar,
                "email": m.email,
                "last_login_at": m.last_login_at.map(ts),
                "last_active_at": ts(m.last_active_at),
                "created_at": ts(m.created_at),
                "role": m.role,
                "status": m.status,
            })
        })
        .collect();
    Ok(Json(json!({"result": "success", "accounts": accounts})))
}

fn member_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::coded(StatusCode::NOT_FOUND, "member-not-found", "Member not found."))
}

#[utoipa::path(delete, path = "/workspaces/current/members/{id}", tag = "console workspace", security(("console_token" = [])),
    params(("id" = Uuid, Path, description = "The member's account id")),
    responses((status = 200, description = "`{result: success, tenant_id}`", body = serde_json::Value), ConsoleErrors))]
async fn remove_member(
    State(state): State<AppState>,
    session: ConsoleSession,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    let target = member_id(&id)?;
    accounts(&state).remove_member(&session.account, &session.membership, target).await?;
    Ok(Json(json!({"result": "success", "tenant_id": session.membership.tenant.id})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RoleRequest {
    role: String,
}

#[utoipa::path(put, path = "/workspaces/current/members/{id}/update-role", tag = "console workspace", security(("console_token" = [])),
    params(("id" = Uuid, Path, description = "The member's account id")), request_body = RoleRequest,
    responses((status = 200, body = Success), ConsoleErrors))]
async fn update_member_role(
    State(state): State<AppState>,
    session: ConsoleSession,
    axum::extract::Path(id): axum::extract::Path<String>,
    JsonBody(body): JsonBody<RoleRequest>,
) -> Result<Json<Value>, ApiError> {
    let target = member_id(&id)?;
    accounts(&state).update_member_role(&session.account, &session.membership, target, &body.role).await?;
    Ok(Json(json!({"result": "success"})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct InviteRequest {
    emails: Vec<String>,
    role: String,
    language: Option<String>,
}

/// Invites by email (a mail with an activation link each).
#[utoipa::path(post, path = "/workspaces/current/members/invite-email", tag = "console workspace", security(("console_token" = [])), request_body = InviteRequest,
    responses((status = 201, description = "`{result: success, invitation_results: [{status, email, url}], tenant_id}`", body = serde_json::Value), ConsoleErrors))]
async fn invite_members(
    State(state): State<AppState>,
    session: ConsoleSession,
    JsonBody(body): JsonBody<InviteRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let results = accounts(&state)
        .invite(
            &session.account,
            &session.membership,
            &body.emails,
            &body.role,
            body.language.as_deref(),
            state.jobs.get(),
        )
        .await?;
    let body = json!({"result": "success", "invitation_results": results, "tenant_id": session.membership.tenant.id});
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CheckQuery {
    workspace_id: Option<Uuid>,
    email: Option<String>,
    token: String,
}

#[utoipa::path(get, path = "/activate/check", tag = "console auth", params(CheckQuery),
    responses((status = 200, description = "`{is_valid, data: {workspace_name, workspace_id, email}}`", body = serde_json::Value)))]
async fn activate_check(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<CheckQuery>,
) -> Result<Json<Value>, ApiError> {
    let checked =
        accounts(&state).check_invitation(&query.token, query.workspace_id, query.email.as_deref()).await?;
    Ok(Json(match checked {
        Some((workspace_name, workspace_id, email)) => json!({
            "is_valid": true,
            "data": {"workspace_name": workspace_name, "workspace_id": workspace_id, "email": email},
        }),
        None => json!({"is_valid": false}),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ActivateRequest {
    workspace_id: Option<Uuid>,
    email: Option<String>,
    token: String,
    name: String,
    #[serde(default = "default_language")]
    interface_language: String,
    #[serde(default = "default_timezone")]
    timezone: String,
    password: Option<String>,
}

fn default_language() -> String {
    "en-US".into()
}

fn default_timezone() -> String {
    "UTC".into()
}

/// Completes an invitation: name, language, time zone (and a password).
#[utoipa::path(post, path = "/activate", tag = "console auth", request_body = ActivateRequest,
    responses((status = 200, body = Success), ConsoleErrors))]
async fn activate(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ActivateRequest>,
) -> Result<Json<Value>, ApiError> {
    accounts(&state)
        .activate(super::invitations::Activation {
            workspace_id: body.workspace_id,
            email: body.email.as_deref(),
            token: &body.token,
            name: &body.name,
            language: &body.interface_language,
            timezone: &body.timezone,
            password: body.password.as_deref(),
        })
        .await?;
    Ok(Json(json!({"result": "success"})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CodeLoginRequest {
    email: String,
    language: Option<String>,
}

/// Mails a sign-in code; answers the token it goes with.
#[utoipa::path(post, path = "/email-code-login", tag = "console auth", request_body = CodeLoginRequest,
    responses((status = 200, description = "`{result: success, data: token}`", body = serde_json::Value), (status = 429, body = ErrorBody), ConsoleErrors))]
async fn email_code_login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<CodeLoginRequest>,
) -> Result<Json<Value>, ApiError> {
    let token = accounts(&state)
        .send_login_code(&body.email, body.language.as_deref(), ip.as_deref(), state.jobs.get())
        .await?;
    Ok(Json(json!({"result": "success", "data": token})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CodeValidityRequest {
    email: String,
    code: String,
    token: String,
}

/// Signs in with the mailed code; sets the session cookies.
#[utoipa::path(post, path = "/email-code-login/validity", tag = "console auth", request_body = CodeValidityRequest,
    responses((status = 200, body = Success), ConsoleErrors))]
async fn email_code_login_validity(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<CodeValidityRequest>,
) -> Result<Response, ApiError> {
    let accounts = accounts(&state);
    let account = accounts.login_with_code(&body.email, &body.code, &body.token, ip.as_deref()).await?;
    let session = accounts.issue_session(account.id, &state.secret_key).await?;
    Ok(with_cookies(json!({"result": "success"}), StatusCode::OK, session_cookies(&state.settings, &session)))
}
