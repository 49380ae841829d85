//! Requests and responses as an object sees them.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Result, wit};

/// An incoming request.
#[derive(Debug, Clone)]
pub struct Request {
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl From<wit::Request> for Request {
    fn from(r: wit::Request) -> Self {
        Self {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl From<Request> for wit::Request {
    fn from(r: Request) -> Self {
        Self {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl Request {
    /// A request to send to another object with [`Stub::fetch`](crate::Stub::fetch), e.g.
    /// `Request::new("POST", "http://do/increment")`.
    ///
    /// ```
    /// let request = duro_sdk::Request::new("POST", "http://do/increment")
    ///     .with_header("content-type", "application/json")
    ///     .with_body(b"{}".to_vec());
    /// assert_eq!(request.path(), "/increment");
    /// ```
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The same request with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The same request with this body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The same request at another URL (e.g. to forward a request to an object:
    /// `request.with_url("http://do/ws")`).
    pub fn with_url(mut self, url: &str) -> Self {
        self.url = url.to_string();
        self
    }

    /// The HTTP method, e.g. `"POST"`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The full URL: `http://do/{path}?{query}`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path, starting with `/`, without the query.
    pub fn path(&self) -> &str {
        let after_host = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"))
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("/");
        after_host.split(['?', '#']).next().unwrap_or("/")
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.url
            .split_once('?')
            .map(|(_, q)| q.split('#').next().unwrap_or(q))
    }

    /// The first value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers, lowercase names.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded as JSON. A body that is not JSON of that shape is the client's mistake:
    /// the error answers 400 with the reason (returned from `fetch` with `?`).
    ///
    /// ```
    /// let request = duro_sdk::Request::new("POST", "http://do/x").with_body(b"{oops".to_vec());
    /// let error = request.json::<serde_json::Value>().unwrap_err();
    /// assert!(matches!(error, duro_sdk::Error::Http { status: 400, .. }));
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            crate::Error::http(400, format!("the request body is not valid JSON: {e}"))
        })
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// 200 with a JSON body.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        Ok(Self::new(200)
            .with_header("content-type", "application/json")
            .with_body(serde_json::to_vec(value)?))
    }

    /// A plain-text response.
    pub fn text(status: u16, text: &str) -> Self {
        Self::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.as_bytes().to_vec())
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Self {
        Self::new(status)
            .with_header("content-type", "application/json")
            .with_body(
                serde_json::json!({ "error": message })
                    .to_string()
                    .into_bytes(),
            )
    }

    /// The same response with another status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The same response with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same response with this body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

impl From<wit::Response> for Response {
    fn from(r: wit::Response) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl Response {
    /// The first value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body decoded as JSON.
    pub fn json_body<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

impl From<Response> for wit::Response {
    fn from(r: Response) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}
