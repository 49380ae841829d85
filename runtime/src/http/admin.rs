//! The admin listener: upload, list and delete classes; apply migrations; health and metrics.
//! Every route requires the bearer token when one is configured.

use std::sync::Arc;

use http::{Method, StatusCode, header};
use hyper::body::Incoming;

use super::error::{ApiError, Body, json};
use super::read_body;
use super::route::{self, Admin};
use crate::class::{Classes, Migration};
use crate::metrics::Metrics;

/// Largest migration body accepted.
const MAX_MIGRATION_BYTES: usize = 64 * 1024;

/// What the admin handlers need.
#[derive(Clone)]
pub struct AdminState {
    pub classes: Arc<Classes>,
    pub metrics: Arc<Metrics>,
    pub token: Option<Arc<str>>,
    pub max_component_bytes: usize,
    pub body_timeout: std::time::Duration,
}

pub async fn handle(state: AdminState, request: http::Request<Incoming>) -> http::Response<Body> {
    route(&state, request)
        .await
        .unwrap_or_else(ApiError::into_response)
}

async fn route(
    state: &AdminState,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, ApiError> {
    authorize(state, &request)?;
    let route = route::admin(request.uri().path())
        .map_err(|_| ApiError::NotFound("no such route".into()))?;
    let method = request.method().clone();
    match (route, method) {
        (Admin::Healthz, Method::GET) => {
            let problems = state.metrics.health.problems();
            Ok(if problems.is_empty() {
                json(StatusCode::OK, &serde_json::json!({"ok": true}))
            } else {
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"ok": false, "problems": problems}),
                )
            })
        }
        (Admin::Metrics, Method::GET) => {
            let mut response = http::Response::new(Body::from(state.metrics.render()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            Ok(response)
        }
        (Admin::Classes, Method::GET) => Ok(json(
            StatusCode::OK,
            &serde_json::to_value(state.classes.list()).expect("class infos serialize"),
        )),
        (Admin::Class(name), Method::PUT) => {
            let (parts, body) = request.into_parts();
            let bytes = read_body(
                &parts.headers,
                body,
                state.max_component_bytes,
                state.body_timeout,
            )
            .await?;
            let (info, created) = state.classes.put(name, bytes).await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json(
                status,
                &serde_json::to_value(info).expect("class info serializes"),
            ))
        }
        (Admin::Class(name), Method::GET) => state
            .classes
            .get(&name)
            .map(|class| {
                json(
                    StatusCode::OK,
                    &serde_json::to_value(class.info()).expect("class info serializes"),
                )
            })
            .ok_or_else(|| ApiError::NotFound(format!("no class named {name}"))),
        (Admin::Class(name), Method::DELETE) => {
            if state.classes.delete(&name).await? {
                let mut response = http::Response::new(Body::default());
                *response.status_mut() = StatusCode::NO_CONTENT;
                Ok(response)
            } else {
                Err(ApiError::NotFound(format!("no class named {name}")))
            }
        }
        (Admin::Migrations, Method::GET) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "applied": state.classes.migrations().await }),
        )),
        (Admin::Migrations, Method::POST) => {
            let (parts, body) = request.into_parts();
            let bytes = read_body(
                &parts.headers,
                body,
                MAX_MIGRATION_BYTES,
                state.body_timeout,
            )
            .await?;
            let migration: Migration = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::BadRequest(format!("not a migration: {e}")))?;
            let applied = state.classes.migrate(&migration).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "tag": migration.tag, "applied": applied }),
            ))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn authorize(state: &AdminState, request: &http::Request<Incoming>) -> Result<(), ApiError> {
    let Some(token) = &state.token else {
        return Ok(());
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    if !given.is_empty() && constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 7235), the token is not.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Compares without an early exit, so the time taken does not reveal the token's prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_is_not() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"ABC"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
