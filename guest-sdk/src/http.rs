//! Requests and responses as an object sees them.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Result, wit};

/// An incoming request.
///
/// ```
/// # use duro_sdk::{Request, Response, Result};
/// fn fetch(request: Request) -> Result<Response> {
///     match (request.method(), request.path()) {
///         ("GET", "/hello") => Ok(Response::text(200, "hi")),
///         _ => Ok(Response::text(404, "Not found")),
///     }
/// }
/// # assert_eq!(fetch(Request::new("GET", "http://do/hello")).unwrap().status, 200);
/// ```
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
    ///
    /// ```
    /// let request = duro_sdk::Request::new("GET", "http://do/").with_header("X-Trace", "abc");
    /// assert_eq!(request.header("x-trace"), Some("abc"));
    /// ```
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The same request with this body.
    ///
    /// ```
    /// let request = duro_sdk::Request::new("PUT", "http://do/note").with_body(b"hello".to_vec());
    /// assert_eq!(request.text(), "hello");
    /// ```
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The same request at another URL (e.g. to forward a request to an object:
    /// `request.with_url("http://do/ws")`).
    ///
    /// ```
    /// let forwarded = duro_sdk::Request::new("GET", "https://example.com/api/rooms/lobby/ws")
    ///     .with_url("http://do/websocket");
    /// assert_eq!(forwarded.path(), "/websocket");
    /// ```
    pub fn with_url(mut self, url: &str) -> Self {
        self.url = url.to_string();
        self
    }

    /// The HTTP method, e.g. `"POST"`.
    ///
    /// ```
    /// let request = duro_sdk::Request::new("POST", "http://do/items/7?verbose=1")
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"qty":2}"#.to_vec());
    /// assert_eq!(request.method(), "POST");
    /// ```
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The full URL: `http://do/{path}?{query}`.
    ///
    /// ```
    /// let request = duro_sdk::Request::new("POST", "http://do/items/7?verbose=1")
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"qty":2}"#.to_vec());
    /// assert_eq!(request.url(), "http://do/items/7?verbose=1");
    /// ```
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path, starting with `/`, without the query.
    ///
    /// ```
    /// let request = duro_sdk::Request::new("POST", "http://do/items/7?verbose=1")
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"qty":2}"#.to_vec());
    /// assert_eq!(request.path(), "/items/7");
    /// ```
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
    ///
    /// ```
    /// let request = duro_sdk::Request::new("POST", "http://do/items/7?verbose=1")
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"qty":2}"#.to_vec());
    /// assert_eq!(request.query(), Some("verbose=1"));
    /// ```
    pub fn query(&self) -> Option<&str> {
        self.url
            .split_once('?')
            .map(|(_, q)| q.split('#').next().unwrap_or(q))
    }

    /// The first value of a header (names compare case-insensitively).
    ///
    /// ```
    /// let request = duro_sdk::Request::new("POST", "http://do/items/7?verbose=1")
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"qty":2}"#.to_vec());
    /// assert_eq!(request.header("content-type"), Some("application/json"));
    /// assert_eq!(request.header("accept"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers, lowercase names.
    ///
    /// ```
    /// let request = duro_sdk::Request::new("POST", "http://do/items/7?verbose=1")
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"qty":2}"#.to_vec());
    /// assert_eq!(request.headers(), [("content-type".to_string(), "application/json".to_string())]);
    /// ```
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body bytes.
    ///
    /// ```
    /// let request = duro_sdk::Request::new("POST", "http://do/items/7?verbose=1")
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"qty":2}"#.to_vec());
    /// assert_eq!(request.body(), br#"{"qty":2}"#);
    /// ```
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text (lossy).
    ///
    /// ```
    /// let request = duro_sdk::Request::new("POST", "http://do/items/7?verbose=1")
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"qty":2}"#.to_vec());
    /// assert_eq!(request.text(), r#"{"qty":2}"#);
    /// ```
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
///
/// ```
/// let response = duro_sdk::Response::json(&duro_sdk::json!({ "count": 1 }))?;
/// assert_eq!((response.status, response.body.as_slice()), (200, &br#"{"count":1}"#[..]));
/// # Ok::<(), duro_sdk::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    ///
    /// ```
    /// assert_eq!(duro_sdk::Response::new(204).status, 204);
    /// ```
    pub status: u16,
    /// Headers, in order.
    ///
    /// ```
    /// let response = duro_sdk::Response::new(201)
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"id":7}"#.to_vec());
    /// assert_eq!(response.headers[0].0, "Content-Type");
    /// ```
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    ///
    /// ```
    /// let response = duro_sdk::Response::new(201)
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"id":7}"#.to_vec());
    /// assert_eq!(response.body, br#"{"id":7}"#);
    /// ```
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    ///
    /// ```
    /// let response = duro_sdk::Response::new(204);
    /// assert!(response.body.is_empty());
    /// ```
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// 200 with a JSON body.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Count { count: i64 }
    /// let response = duro_sdk::Response::json(&Count { count: 3 })?;
    /// assert_eq!(response.header("content-type"), Some("application/json"));
    /// assert_eq!(response.body, br#"{"count":3}"#);
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        Ok(Self::new(200)
            .with_header("content-type", "application/json")
            .with_body(serde_json::to_vec(value)?))
    }

    /// A plain-text response.
    ///
    /// ```
    /// let response = duro_sdk::Response::text(404, "Not found");
    /// assert_eq!((response.status, response.body.as_slice()), (404, &b"Not found"[..]));
    /// ```
    pub fn text(status: u16, text: &str) -> Self {
        Self::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.as_bytes().to_vec())
    }

    /// `{"error": message}` with `status`.
    ///
    /// ```
    /// let response = duro_sdk::Response::error(409, "taken");
    /// assert_eq!(response.body, br#"{"error":"taken"}"#);
    /// ```
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
    ///
    /// ```
    /// let created = duro_sdk::Response::json(&duro_sdk::json!({ "id": 7 }))?.with_status(201);
    /// assert_eq!(created.status, 201);
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The same response with one more header.
    ///
    /// ```
    /// let response = duro_sdk::Response::text(200, "hi").with_header("cache-control", "no-store");
    /// assert_eq!(response.header("Cache-Control"), Some("no-store"));
    /// ```
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same response with this body.
    ///
    /// ```
    /// let response = duro_sdk::Response::new(200).with_body(vec![1, 2, 3]);
    /// assert_eq!(response.body, [1, 2, 3]);
    /// ```
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
    ///
    /// ```
    /// let response = duro_sdk::Response::new(201)
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"id":7}"#.to_vec());
    /// assert_eq!(response.header("content-type"), Some("application/json"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body decoded as JSON.
    ///
    /// ```
    /// let response = duro_sdk::Response::new(201)
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(br#"{"id":7}"#.to_vec());
    /// let value: serde_json::Value = response.json_body()?;
    /// assert_eq!(value["id"], 7);
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
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
