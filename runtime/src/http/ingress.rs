//! The ingress listener: object routes and id routes. A request enters here, is parsed once into
//! a `route::Ingress`, becomes an object `Request` and goes to the `Directory`.

use http::{HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::error::{ApiError, Body, json};
use super::read_body;
use super::route::{self, Ingress};
use crate::object::{Directory, Request, Response};

/// Handles one ingress request; every failure becomes a JSON error response.
pub async fn handle(
    directory: Directory,
    max_body: usize,
    request: http::Request<Incoming>,
) -> http::Response<Body> {
    let response = route(&directory, max_body, request)
        .await
        .unwrap_or_else(ApiError::into_response);
    directory.metrics().requests.inc();
    response
}

async fn route(
    directory: &Directory,
    max_body: usize,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, ApiError> {
    let route =
        route::ingress(request.uri().path(), request.uri().query()).map_err(|e| match e {
            route::RouteError::NotFound => ApiError::NotFound("no such route".into()),
            route::RouteError::BadRequest(reason) => ApiError::BadRequest(reason),
        })?;
    let classes = directory.classes();
    let class_of = |name: &crate::ids::ClassName| {
        classes
            .get(name)
            .ok_or_else(|| ApiError::NotFound(format!("no class named {name}")))
    };
    match route {
        Ingress::ByName { class, name, rest } => {
            let class = class_of(&class)?;
            let id = class.ids.from_name(&name);
            let request = object_request(request, &rest, max_body).await?;
            let response = directory.fetch(class, id, Some(name), request).await?;
            into_http(response)
        }
        Ingress::ById { class, id, rest } => {
            let class = class_of(&class)?;
            let id = class.ids.from_string(&id)?;
            let request = object_request(request, &rest, max_body).await?;
            let response = directory.fetch(class, id, None, request).await?;
            into_http(response)
        }
        Ingress::Ids { class } => {
            let class = class_of(&class)?;
            let id = match *request.method() {
                Method::POST => class.ids.new_unique(),
                Method::GET => {
                    let name = request
                        .uri()
                        .query()
                        .and_then(|q| {
                            form_urlencoded::parse(q.as_bytes())
                                .find(|(k, _)| k == "name")
                                .map(|(_, v)| v.into_owned())
                        })
                        .ok_or_else(|| {
                            ApiError::BadRequest("GET /ids/{class} needs ?name=".into())
                        })?;
                    class.ids.from_name(&name)
                }
                _ => return Err(ApiError::MethodNotAllowed),
            };
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "id": id.to_hex() }),
            ))
        }
    }
}

async fn object_request(
    request: http::Request<Incoming>,
    rest: &str,
    max_body: usize,
) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, max_body).await?;
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(Request {
        method: parts.method.as_str().to_string(),
        url: format!("http://do{rest}"),
        headers,
        body,
    })
}

fn into_http(response: Response) -> Result<http::Response<Body>, ApiError> {
    let status = StatusCode::from_u16(response.status).map_err(|_| {
        ApiError::Internal(format!(
            "the object answered with an invalid status {}",
            response.status
        ))
    })?;
    let mut out = http::Response::new(Full::new(response.body));
    *out.status_mut() = status;
    for (name, value) in response.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(name), Ok(value)) => {
                out.headers_mut().append(name, value);
            }
            _ => tracing::warn!(header = name, "dropping an invalid header from an object"),
        }
    }
    Ok(out)
}
