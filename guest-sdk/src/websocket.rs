//! WebSockets held by the runtime for this object (hibernatable).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wit::duro::object::{types, websockets as raw};
use crate::{Error, Result};

pub use raw::WebsocketError;

/// One WebSocket message.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WebSocket(pub(crate) u64);

impl WebSocket {
    /// The runtime's id of this socket (stable while it is open).
    pub fn id(&self) -> u64 {
        self.0
    }

    /// Sends a message; it leaves once this event's writes are durable.
    pub fn send(&self, message: &Message) -> Result<()> {
        Ok(raw::send(self.0, &message.into())?)
    }

    /// Sends a text message.
    pub fn send_text(&self, text: &str) -> Result<()> {
        self.send(&Message::Text(text.to_string()))
    }

    /// Closes the socket with `code` (1000 or 3000-4999) and `reason`.
    pub fn close(&self, code: u16, reason: &str) -> Result<()> {
        Ok(raw::close(self.0, code, reason)?)
    }

    /// The tags it was accepted with.
    pub fn tags(&self) -> Result<Vec<String>> {
        Ok(raw::get_tags(self.0)?)
    }

    /// Keeps `value` (as JSON, at most 2 KiB) with the socket; it survives hibernation.
    pub fn serialize_attachment<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        Ok(raw::serialize_attachment(
            self.0,
            &serde_json::to_vec(value)?,
        )?)
    }

    /// The attachment kept with [`serialize_attachment`](Self::serialize_attachment).
    pub fn deserialize_attachment<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        raw::deserialize_attachment(self.0)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(Error::from))
            .transpose()
    }
}

/// This object's WebSockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebSockets {
    _private: (),
}

impl WebSockets {
    /// Accepts the WebSocket of the current `fetch` (which must then answer 101).
    pub fn accept(&self, tags: &[&str]) -> Result<WebSocket> {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        Ok(WebSocket(raw::accept(&tags)?))
    }

    /// The open sockets, optionally only those with `tag`.
    pub fn get(&self, tag: Option<&str>) -> Vec<WebSocket> {
        raw::get_websockets(tag)
            .into_iter()
            .map(WebSocket)
            .collect()
    }

    /// A text message the runtime answers with `response` without waking the object
    /// (`None` removes it).
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
