//! `redis://` URLs.

use std::fmt;

use super::RedisError;

/// A parsed `redis://[[user]:password@]host[:port][/db]` URL.
///
/// The host is an IP address, `[an:ipv6::address]`, or a name resolved with
/// the system resolver once, when the client connects (use an IP address
/// where a blocking lookup at start-up is not acceptable). The port defaults
/// to 6379 and the database to none (Redis' default, 0). `%XX` escapes are
/// decoded in the user and password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user name for `AUTH user password` (Redis 6+).
    pub username: Option<String>,
    /// Password for `AUTH`.
    pub password: Option<String>,
    /// Database for `SELECT`.
    pub db: Option<u32>,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of logs.
        f.debug_struct("RedisUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .finish()
    }
}

impl RedisUrl {
    /// Parses a URL.
    ///
    /// ```
    /// use pawl::redis::RedisUrl;
    ///
    /// let url = RedisUrl::parse("redis://:secret@127.0.0.1:6380/2")?;
    /// assert_eq!((url.host.as_str(), url.port, url.db), ("127.0.0.1", 6380, Some(2)));
    /// assert_eq!(url.password.as_deref(), Some("secret"));
    /// # Ok::<(), pawl::redis::RedisError>(())
    /// ```
    pub fn parse(url: &str) -> Result<RedisUrl, RedisError> {
        let bad = |why: &str| RedisError::BadUrl(format!("{why} in {:?}", redact(url)));
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| bad("expected the redis:// scheme"))?;
        if rest.contains(['?', '#']) {
            return Err(bad("query strings and fragments are not supported"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = match info.find(':') {
                    Some(i) => (&info[..i], Some(&info[i + 1..])),
                    None => (info, None),
                };
                let user = percent_decode(user).ok_or_else(|| bad("bad %-escape"))?;
                let pass = pass
                    .map(|p| percent_decode(p).ok_or_else(|| bad("bad %-escape")))
                    .transpose()?;
                match pass {
                    // redis://password@host: a lone user part is the password,
                    // as redis-cli and most clients read it.
                    None => (None, Some(user).filter(|u| !u.is_empty())),
                    Some(p) => (Some(user).filter(|u| !u.is_empty()), Some(p)),
                }
            }
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| bad("unclosed ["))?;
            let host = &v6[..end];
            let port = match &v6[end + 1..] {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (host, port)
        } else {
            match hostport.rfind(':') {
                Some(i) => (&hostport[..i], Some(&hostport[i + 1..])),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = match port {
            None => 6379,
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
        };
        let db = match path {
            "" => None,
            p => Some(p.parse::<u32>().map_err(|_| bad("bad database number"))?),
        };
        Ok(RedisUrl {
            host: host.to_owned(),
            port,
            username,
            password,
            db,
        })
    }
}

/// The URL with any password replaced, for error messages and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RedisUrl {
        RedisUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn full_and_minimal_urls() {
        let u = parse("redis://127.0.0.1:6379");
        assert_eq!((u.host.as_str(), u.port, u.db), ("127.0.0.1", 6379, None));
        assert_eq!((u.username, u.password), (None, None));
        let u = parse("redis://localhost");
        assert_eq!((u.host.as_str(), u.port), ("localhost", 6379));
        let u = parse("redis://:p%40ss@10.0.0.1:7000/3");
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!((u.port, u.db), (7000, Some(3)));
        let u = parse("redis://alice:pw@h/");
        assert_eq!(u.username.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.db, None);
        let u = parse("redis://pw@h");
        assert_eq!((u.username, u.password.as_deref()), (None, Some("pw")));
        let u = parse("redis://[::1]:6380/1");
        assert_eq!((u.host.as_str(), u.port, u.db), ("::1", 6380, Some(1)));
    }

    #[test]
    fn bad_urls_are_errors() {
        for s in [
            "",
            "http://h",
            "redis://",
            "redis://h:port",
            "redis://h:99999",
            "redis://h/x",
            "redis://[::1",
            "redis://[::1]x",
            "redis://h?db=1",
            "redis://:%zz@h",
        ] {
            assert!(
                matches!(RedisUrl::parse(s), Err(RedisError::BadUrl(_))),
                "{s}"
            );
        }
    }

    #[test]
    fn passwords_stay_out_of_errors_and_debug() {
        let e = RedisUrl::parse("redis://:hunter2@h:x").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(!format!("{:?}", parse("redis://:hunter2@h")).contains("hunter2"));
    }
}
