//! The chat's wire format: JSON text frames. The field names and `type`
//! values here are pinned by issue 3; extra fields from clients are ignored.

use serde::{Deserialize, Serialize};

/// A user's public profile. Unknown fields are dropped; the colour is kept
/// only when it is a `#rgb` or `#rrggbb` hex colour, so a page can put it in
/// a style without escaping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// `#rrggbb`, or empty for the page's default.
    #[serde(default)]
    pub color: String,
    /// A short status line.
    #[serde(default)]
    pub status: String,
}

/// Longest status line kept, in characters.
pub const MAX_STATUS: usize = 140;

impl Profile {
    /// The profile with a bad colour dropped and the status cut to length.
    pub fn sanitized(mut self) -> Profile {
        let hex = self.color.strip_prefix('#').unwrap_or("");
        let valid = matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            self.color.clear();
        }
        if self.status.chars().count() > MAX_STATUS {
            self.status = self.status.chars().take(MAX_STATUS).collect();
        }
        self.status.retain(|c| !c.is_control());
        self
    }
}

/// A user as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name, unique in the room.
    pub name: String,
    /// The profile.
    pub profile: Profile,
}

/// A public message, as stored in the backlog and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Strictly increasing per room.
    pub id: u64,
    /// The sender's name.
    pub from: String,
    /// The text.
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
}

/// A direct message; its id comes from the same per-room sequence as
/// public messages, so one `since` covers both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectMessage {
    /// Strictly increasing per room.
    pub id: u64,
    /// The sender's name.
    pub from: String,
    /// The recipient's name.
    pub to: String,
    /// The text.
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    /// The first message of a connection.
    Join {
        /// 1 to 32 characters.
        name: String,
        /// Optional profile.
        #[serde(default)]
        profile: Option<Profile>,
        /// The secret returned by the name's first join.
        #[serde(default)]
        token: Option<String>,
        /// Only messages after this id.
        #[serde(default)]
        since: Option<u64>,
    },
    /// A public message.
    Say {
        /// The text.
        text: String,
    },
    /// A direct message.
    Dm {
        /// The recipient.
        to: String,
        /// The text.
        text: String,
    },
    /// A profile update.
    Profile {
        /// The new profile.
        profile: Profile,
    },
    /// Older public messages.
    History {
        /// Only messages with a smaller id (default: the newest).
        #[serde(default)]
        before: Option<u64>,
        /// How many at most (default 50).
        #[serde(default)]
        limit: Option<usize>,
    },
}

impl ClientMessage {
    /// Reads a client's text frame (the one parser of client JSON; the fuzz
    /// target `chat` runs it).
    pub fn parse(text: &str) -> Result<ClientMessage, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// The error codes of issue 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Bad JSON, an unknown type, a missing field, a binary frame.
    BadRequest,
    /// Anything but `join` before a join.
    NotJoined,
    /// The name is someone else's (wrong or missing token).
    NameTaken,
    /// A DM to a name nobody in the room ever joined with.
    NoSuchUser,
    /// Text over the limit.
    TooLong,
    /// Over the per-connection message rate.
    RateLimited,
}

/// What the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage<'a> {
    /// The answer to a join.
    Welcome {
        /// The user as joined.
        you: &'a User,
        /// The name's secret, for joining again.
        token: &'a str,
        /// The room's last id (an extra field): a client that saw higher
        /// ids talked to another history and should start over.
        last_id: u64,
        /// Everyone online in the room, the joiner too.
        users: Vec<&'a User>,
        /// Public messages after `since` (or the whole backlog).
        backlog: Vec<&'a ChatMessage>,
        /// Direct messages to or from the user after `since`, among them
        /// any sent while the user was offline.
        dms: Vec<&'a DirectMessage>,
    },
    /// A user came online.
    Joined {
        /// Who.
        user: &'a User,
    },
    /// A user's last connection closed.
    Left {
        /// Who.
        name: &'a str,
    },
    /// A user changed their profile.
    Profile {
        /// The user with the new profile.
        user: &'a User,
    },
    /// A public message.
    Message(&'a ChatMessage),
    /// A direct message.
    Dm(&'a DirectMessage),
    /// The answer to `history`.
    History {
        /// Oldest first.
        messages: Vec<&'a ChatMessage>,
    },
    /// A request failed; the connection stays usable.
    Error {
        /// Machine-readable.
        code: ErrorCode,
        /// Human-readable.
        message: &'a str,
    },
}

impl ServerMessage<'_> {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these types (strings, numbers, vectors) cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_pinned_client_messages() {
        let join: ClientMessage = serde_json::from_str(
            r##"{"type":"join","name":"alice","profile":{"color":"#e91e63","status":"hi"},"token":"t","since":123,"extra":1}"##,
        )
        .expect("join");
        assert_eq!(
            join,
            ClientMessage::Join {
                name: "alice".into(),
                profile: Some(Profile {
                    color: "#e91e63".into(),
                    status: "hi".into()
                }),
                token: Some("t".into()),
                since: Some(123),
            }
        );
        let dm: ClientMessage =
            serde_json::from_str(r#"{"type":"dm","to":"bob","text":"psst"}"#).expect("dm");
        assert!(matches!(dm, ClientMessage::Dm { .. }));
        let history: ClientMessage =
            serde_json::from_str(r#"{"type":"history","before":5}"#).expect("history");
        assert_eq!(
            history,
            ClientMessage::History {
                before: Some(5),
                limit: None
            }
        );
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"shout"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"say"}"#).is_err());
    }

    #[test]
    fn serializes_the_pinned_server_messages() {
        let m = ChatMessage {
            id: 7,
            from: "alice".into(),
            text: "hi".into(),
            ts: 1,
        };
        assert_eq!(
            ServerMessage::Message(&m).to_json(),
            r#"{"type":"message","id":7,"from":"alice","text":"hi","ts":1}"#
        );
        let e = ServerMessage::Error {
            code: ErrorCode::RateLimited,
            message: "slow down",
        };
        assert_eq!(
            e.to_json(),
            r#"{"type":"error","code":"rate_limited","message":"slow down"}"#
        );
        assert_eq!(
            ServerMessage::Left { name: "bob" }.to_json(),
            r#"{"type":"left","name":"bob"}"#
        );
    }

    #[test]
    fn profiles_are_sanitized() {
        let p = Profile {
            color: "red;background:url(x)".into(),
            status: "x".repeat(500),
        }
        .sanitized();
        assert_eq!(p.color, "");
        assert_eq!(p.status.len(), MAX_STATUS);
        let ok = Profile {
            color: "#A0b".into(),
            status: "ok\n".into(),
        }
        .sanitized();
        assert_eq!((ok.color.as_str(), ok.status.as_str()), ("#A0b", "ok"));
    }
}
