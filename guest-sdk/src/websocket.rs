//! WebSockets held by the runtime for this object (hibernatable).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wit::duro::object::{types, websockets as raw};
use crate::{Error, Result};

/// Why a WebSocket call failed.
///
/// ```no_run
/// # use duro_sdk::{Message, WebSocket};
/// # let ws: WebSocket = duro_sdk::State::default().websockets().get(None)[0];
/// match ws.send_text("hi") {
///     Err(duro_sdk::Error::WebSocket(duro_sdk::WebsocketError::UnknownSocket)) => {} // it closed
///     other => other?,
/// }
/// # Ok::<(), duro_sdk::Error>(())
/// ```
pub use raw::WebsocketError;

/// One WebSocket message.
///
/// ```
/// use duro_sdk::Message;
/// let reply = match Message::Text("ping".into()) {
///     Message::Text(text) if text == "ping" => Message::Text("pong".into()),
///     Message::Text(text) => Message::Text(text.to_uppercase()),
///     Message::Binary(bytes) => Message::Binary(bytes),
/// };
/// assert_eq!(reply, Message::Text("pong".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl From<types::Message> for Message {
    fn from(m: types::Message) -> Self {
        match m {
            types::Message::Text(t) => Self::Text(t),
            types::Message::Binary(b) => Self::Binary(b),
        }
    }
}

impl From<&Message> for types::Message {
    fn from(m: &Message) -> Self {
        match m {
            Message::Text(t) => Self::Text(t.clone()),
            Message::Binary(b) => Self::Binary(b.clone()),
        }
    }
}

/// An accepted WebSocket of this object.
///
/// ```no_run
/// # use duro_sdk::{DurableObject, Message, Request, Response, Result, State, WebSocket};
/// # struct Echo { state: State }
/// impl DurableObject for Echo {
///     fn new(state: State) -> Self { Echo { state } }
///     fn fetch(&mut self, _request: Request) -> Result<Response> {
///         self.state.websockets().accept(&[])?;
///         Ok(Response::new(101))
///     }
///     fn websocket_message(&mut self, ws: WebSocket, message: Message) -> Result<()> {
///         ws.send(&message)
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WebSocket(pub(crate) u64);

impl WebSocket {
    /// The runtime's id of this socket (stable while it is open).
    ///
    /// ```no_run
    /// # use duro_sdk::{Message, WebSocket};
    /// # let ws: WebSocket = duro_sdk::State::default().websockets().get(None)[0];
    /// println!("socket {} sent a message", ws.id());
    /// ```
    pub fn id(&self) -> u64 {
        self.0
    }

    /// Sends a message; it leaves once this event's writes are durable.
    ///
    /// ```no_run
    /// # use duro_sdk::{Message, WebSocket};
    /// # let ws: WebSocket = duro_sdk::State::default().websockets().get(None)[0];
    /// ws.send(&Message::Binary(vec![1, 2, 3]))?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn send(&self, message: &Message) -> Result<()> {
        Ok(raw::send(self.0, &message.into())?)
    }

    /// Sends a text message.
    ///
    /// ```no_run
    /// # use duro_sdk::{Message, WebSocket};
    /// # let ws: WebSocket = duro_sdk::State::default().websockets().get(None)[0];
    /// ws.send_text("welcome")?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn send_text(&self, text: &str) -> Result<()> {
        self.send(&Message::Text(text.to_string()))
    }

    /// Closes the socket with `code` (1000 or 3000-4999) and `reason`.
    ///
    /// ```no_run
    /// # use duro_sdk::{Message, WebSocket};
    /// # let ws: WebSocket = duro_sdk::State::default().websockets().get(None)[0];
    /// ws.close(4000, "kicked")?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn close(&self, code: u16, reason: &str) -> Result<()> {
        Ok(raw::close(self.0, code, reason)?)
    }

    /// The tags it was accepted with.
    ///
    /// ```no_run
    /// # use duro_sdk::{Message, WebSocket};
    /// # let ws: WebSocket = duro_sdk::State::default().websockets().get(None)[0];
    /// let is_admin = ws.tags()?.iter().any(|t| t == "admin");
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn tags(&self) -> Result<Vec<String>> {
        Ok(raw::get_tags(self.0)?)
    }

    /// Keeps `value` (as JSON, at most 16 KiB) with the socket; it survives hibernation.
    ///
    /// ```no_run
    /// # use duro_sdk::{Message, WebSocket};
    /// # let ws: WebSocket = duro_sdk::State::default().websockets().get(None)[0];
    /// ws.serialize_attachment(&duro_sdk::json!({ "user": "ada" }))?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn serialize_attachment<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        Ok(raw::serialize_attachment(
            self.0,
            &serde_json::to_vec(value)?,
        )?)
    }

    /// The attachment kept with [`serialize_attachment`](Self::serialize_attachment).
    ///
    /// ```no_run
    /// # use duro_sdk::{Message, WebSocket};
    /// # let ws: WebSocket = duro_sdk::State::default().websockets().get(None)[0];
    /// #[derive(serde::Deserialize)]
    /// struct Session { user: String }
    /// if let Some(session) = ws.deserialize_attachment::<Session>()? {
    ///     ws.send_text(&format!("hello again, {}", session.user))?;
    /// }
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn deserialize_attachment<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        raw::deserialize_attachment(self.0)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(Error::from))
            .transpose()
    }
}

/// This object's WebSockets.
///
/// ```no_run
/// let sockets = duro_sdk::State::default().websockets();
/// for ws in sockets.get(Some("room:lobby")) {
///     ws.send_text("someone joined")?;
/// }
/// # Ok::<(), duro_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct WebSockets {
    _private: (),
}

impl WebSockets {
    /// Accepts the WebSocket of the current `fetch` (which must then answer 101).
    ///
    /// ```no_run
    /// # use duro_sdk::{Request, Response, Result, State};
    /// fn fetch(state: &State, request: Request) -> Result<Response> {
    ///     if request.header("upgrade") == Some("websocket") {
    ///         state.websockets().accept(&["room:lobby"])?;
    ///         return Ok(Response::new(101));
    ///     }
    ///     Ok(Response::text(426, "expected a WebSocket"))
    /// }
    /// ```
    pub fn accept(&self, tags: &[&str]) -> Result<WebSocket> {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        Ok(WebSocket(raw::accept(&tags)?))
    }

    /// The open sockets, optionally only those with `tag`.
    ///
    /// ```no_run
    /// let everyone = duro_sdk::State::default().websockets().get(None);
    /// println!("{} sockets open", everyone.len());
    /// ```
    pub fn get(&self, tag: Option<&str>) -> Vec<WebSocket> {
        raw::get_websockets(tag)
            .into_iter()
            .map(WebSocket)
            .collect()
    }

    /// A text message the runtime answers with `response` without waking the object
    /// (`None` removes it).
    ///
    /// ```no_run
    /// // Answered by the runtime; a hibernated object stays asleep.
    /// duro_sdk::State::default().websockets().set_auto_response(Some(("ping", "pong")));
    /// ```
    pub fn set_auto_response(&self, pair: Option<(&str, &str)>) {
        raw::set_auto_response(pair);
    }
}

/// A readable sentence for a WebSocket error.
pub(crate) fn describe(error: &WebsocketError) -> String {
    match error {
        WebsocketError::NotAnUpgrade => {
            "not a WebSocket upgrade request (or accepted twice)".into()
        }
        WebsocketError::UnknownSocket => "no such open WebSocket".into(),
        WebsocketError::TooLarge(limit) => format!("message over the {limit}-byte limit"),
        WebsocketError::InvalidArgument(reason) => format!("invalid argument: {reason}"),
    }
}
