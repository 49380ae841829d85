//! Parses a request path once into a typed route. Ingress and admin handlers match on these and
//! never look at the raw path again.

use percent_encoding::percent_decode_str;

use crate::ids::ClassName;

/// An ingress route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingress {
    /// `/objects/{class}/{name}/{path...}`
    ByName {
        class: ClassName,
        name: String,
        /// What the guest sees: `/{path...}` plus `?query` if any.
        rest: String,
    },
    /// `/ids/{class}/{id}/{path...}`
    ById {
        class: ClassName,
        id: String,
        rest: String,
    },
    /// `/ids/{class}`: POST mints a unique id, GET `?name=` derives one.
    Ids { class: ClassName },
}

/// An admin route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    Classes,
    Class(ClassName),
    /// `/classes/{class}/objects`: the class's stored objects.
    Objects(ClassName),
    /// `/classes/{class}/objects/{id}/...` or `/classes/{class}/objects/by-name/{name}/...`: one
    /// object, or a part of it.
    Object(ClassName, ObjectRef, ObjectPart),
    Migrations,
    Backup,
    Worker,
    /// `/assets`: the static assets bundle.
    Assets,
    Bindings,
    Outbound,
    Vars,
    Check,
    Healthz,
    Readyz,
    Metrics,
    /// `/top`: the costliest objects, and each class's totals.
    Top,
    /// `/tail`: live events and guest log lines (server-sent events).
    Tail,
    /// `/internal/forward`: cluster mode's route for another node's forwarded event.
    Forward,
    /// `/`: leads to the inspector.
    Root,
    /// `/inspector` (the page: "") or `/inspector/{file}`: the inspector's files.
    Inspector(String),
}

/// How an admin route names an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectRef {
    /// Its id as written (64 hex; checked against the class by the handler).
    Id(String),
    /// The name it is addressed by (its id derived as `/objects/{class}/{name}` does).
    Name(String),
}

/// What of one object an admin route addresses (the path after the object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectPart {
    /// (nothing): its stored entries, alarm and sockets.
    Whole,
    /// `/sql`: its SQL tables, or the rows of one (`?table=`).
    Sql,
    /// `/entries/{key...}`: one entry (the key percent-decoded, `/` allowed).
    Entry(String),
    /// `/alarm`.
    Alarm,
    /// `/websockets/{socket}`: one open WebSocket.
    Socket(String),
    /// `/export`: the object as JSON lines.
    Export,
    /// `/import`: JSON lines put into the object.
    Import,
}

/// Why a path is not a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    BadRequest(String),
}

pub fn ingress(path: &str, query: Option<&str>) -> Result<Ingress, RouteError> {
    let (head, tail) = split_segments(path, 3);
    let rest = |tail: &str| match query {
        Some(q) => format!("/{tail}?{q}"),
        None => format!("/{tail}"),
    };
    match head.as_slice() {
        ["objects", class, name] => Ok(Ingress::ByName {
            class: class_name(class)?,
            name: decode(name)?,
            rest: rest(tail),
        }),
        ["ids", class, id] => Ok(Ingress::ById {
            class: class_name(class)?,
            id: decode(id)?,
            rest: rest(tail),
        }),
        ["ids", class] if tail.is_empty() => Ok(Ingress::Ids {
            class: class_name(class)?,
        }),
        _ => Err(RouteError::NotFound),
    }
}

pub fn admin(path: &str) -> Result<Admin, RouteError> {
    let (head, tail) = split_segments(path, 3);
    if let ["classes", class, "objects"] = head.as_slice()
        && !tail.is_empty()
    {
        return object(class_name(class)?, tail);
    }
    if !tail.is_empty() {
        return Err(RouteError::NotFound);
    }
    match head.as_slice() {
        [] => Ok(Admin::Root),
        ["inspector"] => Ok(Admin::Inspector(String::new())),
        ["inspector", file] => Ok(Admin::Inspector(decode(file)?)),
        ["classes"] => Ok(Admin::Classes),
        ["classes", class] => Ok(Admin::Class(class_name(class)?)),
        ["classes", class, "objects"] => Ok(Admin::Objects(class_name(class)?)),
        ["migrations"] => Ok(Admin::Migrations),
        ["backup"] => Ok(Admin::Backup),
        ["worker"] => Ok(Admin::Worker),
        ["assets"] => Ok(Admin::Assets),
        ["bindings"] => Ok(Admin::Bindings),
        ["outbound"] => Ok(Admin::Outbound),
        ["vars"] => Ok(Admin::Vars),
        ["check"] => Ok(Admin::Check),
        ["healthz"] => Ok(Admin::Healthz),
        ["readyz"] => Ok(Admin::Readyz),
        ["metrics"] => Ok(Admin::Metrics),
        ["top"] => Ok(Admin::Top),
        ["tail"] => Ok(Admin::Tail),
        ["internal", "forward"] => Ok(Admin::Forward),
        _ => Err(RouteError::NotFound),
    }
}

/// `{id}[/part]` or `by-name/{name}[/part]` after `/classes/{class}/objects/`.
fn object(class: ClassName, path: &str) -> Result<Admin, RouteError> {
    let (first, rest) = path.split_once('/').unwrap_or((path, ""));
    let (object, rest) = match first {
        "by-name" => {
            let (name, rest) = rest.split_once('/').unwrap_or((rest, ""));
            (ObjectRef::Name(decode(name)?), rest)
        }
        id => (ObjectRef::Id(decode(id)?), rest),
    };
    let part = match rest.split_once('/').unwrap_or((rest, "")) {
        ("", "") => ObjectPart::Whole,
        ("sql", "") => ObjectPart::Sql,
        ("alarm", "") => ObjectPart::Alarm,
        ("export", "") => ObjectPart::Export,
        ("import", "") => ObjectPart::Import,
        ("entries", key) if !key.is_empty() => ObjectPart::Entry(decode(key)?),
        ("websockets", socket) if !socket.is_empty() && !socket.contains('/') => {
            ObjectPart::Socket(decode(socket)?)
        }
        _ => return Err(RouteError::NotFound),
    };
    Ok(Admin::Object(class, object, part))
}

/// Up to `n` leading segments (raw), and the raw remainder after them (no leading slash).
fn split_segments(path: &str, n: usize) -> (Vec<&str>, &str) {
    let mut rest = path.strip_prefix('/').unwrap_or(path);
    let mut head = Vec::with_capacity(n);
    while head.len() < n && !rest.is_empty() {
        match rest.split_once('/') {
            Some((segment, tail)) => {
                head.push(segment);
                rest = tail;
            }
            None => {
                head.push(rest);
                rest = "";
            }
        }
    }
    (head, rest)
}

/// The value of `key` in a query string (form encoding: `+` is a space), decoded strictly: a
/// value that is not UTF-8 once percent-decoded is a bad request, as a path segment is.
pub fn query_value(query: Option<&str>, key: &str) -> Result<Option<String>, RouteError> {
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(k)? == key {
            return form_decode(v).map(Some);
        }
    }
    Ok(None)
}

fn form_decode(part: &str) -> Result<String, RouteError> {
    decode(&part.replace('+', " "))
        .map_err(|_| RouteError::BadRequest("query value is not valid UTF-8".into()))
}

fn decode(segment: &str) -> Result<String, RouteError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| RouteError::BadRequest("path segment is not valid UTF-8".into()))
}

fn class_name(segment: &str) -> Result<ClassName, RouteError> {
    let decoded = decode(segment)?;
    ClassName::parse(&decoded).map_err(|_| RouteError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str) -> ClassName {
        ClassName::parse(name).unwrap()
    }

    #[test]
    fn object_routes_keep_the_rest_and_query() {
        assert_eq!(
            ingress("/objects/Counter/a%20b/increment/x", Some("n=1")),
            Ok(Ingress::ByName {
                class: class("Counter"),
                name: "a b".into(),
                rest: "/increment/x?n=1".into()
            })
        );
        assert_eq!(
            ingress("/objects/Counter/alice", None),
            Ok(Ingress::ByName {
                class: class("Counter"),
                name: "alice".into(),
                rest: "/".into()
            })
        );
        assert_eq!(
            ingress("/objects/Counter/alice/", None),
            Ok(Ingress::ByName {
                class: class("Counter"),
                name: "alice".into(),
                rest: "/".into()
            })
        );
    }

    #[test]
    fn id_routes_parse() {
        assert_eq!(
            ingress("/ids/Counter", None),
            Ok(Ingress::Ids {
                class: class("Counter")
            })
        );
        assert!(matches!(
            ingress("/ids/Counter/abc/get", None),
            Ok(Ingress::ById { .. })
        ));
    }

    #[test]
    fn other_paths_are_not_found() {
        for path in [
            "/",
            "/objects",
            "/objects/Counter",
            "/nope/a/b",
            "/objects/1bad/x",
        ] {
            assert_eq!(ingress(path, None), Err(RouteError::NotFound), "{path}");
        }
        assert!(matches!(
            ingress("/objects/Counter/%ff", None),
            Err(RouteError::BadRequest(_))
        ));
        assert_eq!(
            admin("/classes/Counter"),
            Ok(Admin::Class(class("Counter")))
        );
        assert_eq!(admin("/classes/Counter/x"), Err(RouteError::NotFound));
        assert_eq!(
            admin("/classes/Counter/objects"),
            Ok(Admin::Objects(class("Counter")))
        );
        assert_eq!(
            admin("/classes/Counter/objects/ab12"),
            Ok(Admin::Object(
                class("Counter"),
                ObjectRef::Id("ab12".into()),
                ObjectPart::Whole
            ))
        );
        assert_eq!(
            admin("/classes/Counter/objects/by-name/a%20b"),
            Ok(Admin::Object(
                class("Counter"),
                ObjectRef::Name("a b".into()),
                ObjectPart::Whole
            ))
        );
        assert_eq!(
            admin("/classes/Counter/objects/by-name/a/b"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            admin("/classes/Counter/objects/ab12/sql"),
            Ok(Admin::Object(
                class("Counter"),
                ObjectRef::Id("ab12".into()),
                ObjectPart::Sql
            ))
        );
        assert_eq!(
            admin("/classes/Counter/objects/by-name/sql/sql"),
            Ok(Admin::Object(
                class("Counter"),
                ObjectRef::Name("sql".into()),
                ObjectPart::Sql
            ))
        );
        assert_eq!(
            admin("/classes/Counter/objects/by-name/sql"),
            Ok(Admin::Object(
                class("Counter"),
                ObjectRef::Name("sql".into()),
                ObjectPart::Whole
            ))
        );
        assert_eq!(
            admin("/classes/Counter/objects/ab12/sql/x"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            admin("/classes/Counter/objects/by-name/a/entries/x%20y/z"),
            Ok(Admin::Object(
                class("Counter"),
                ObjectRef::Name("a".into()),
                ObjectPart::Entry("x y/z".into())
            ))
        );
        assert_eq!(
            admin("/classes/Counter/objects/ab12/alarm"),
            Ok(Admin::Object(
                class("Counter"),
                ObjectRef::Id("ab12".into()),
                ObjectPart::Alarm
            ))
        );
        assert_eq!(
            admin("/classes/Counter/objects/ab12/websockets/7"),
            Ok(Admin::Object(
                class("Counter"),
                ObjectRef::Id("ab12".into()),
                ObjectPart::Socket("7".into())
            ))
        );
        for path in [
            "/classes/Counter/objects/ab12/entries",
            "/classes/Counter/objects/ab12/entries/",
            "/classes/Counter/objects/ab12/websockets/7/x",
            "/classes/Counter/objects/ab12/alarm/x",
        ] {
            assert_eq!(admin(path), Err(RouteError::NotFound), "{path}");
        }
    }

    #[test]
    fn the_inspector_has_routes_of_its_own() {
        assert_eq!(admin("/"), Ok(Admin::Root));
        assert_eq!(admin("/inspector"), Ok(Admin::Inspector(String::new())));
        assert_eq!(admin("/inspector/"), Ok(Admin::Inspector(String::new())));
        assert_eq!(
            admin("/inspector/inspector.js"),
            Ok(Admin::Inspector("inspector.js".into()))
        );
        assert_eq!(admin("/inspector/a/b"), Err(RouteError::NotFound));
    }

    #[test]
    fn query_values_decode_strictly() {
        assert_eq!(
            query_value(Some("a=1&name=x+y%21"), "name"),
            Ok(Some("x y!".into()))
        );
        assert_eq!(query_value(Some("a=1"), "name"), Ok(None));
        assert_eq!(query_value(None, "name"), Ok(None));
        assert_eq!(query_value(Some("name"), "name"), Ok(Some(String::new())));
        assert_eq!(
            query_value(Some("name=%E2%9C%93"), "name"),
            Ok(Some("\u{2713}".into()))
        );
        for bad in ["name=%FF", "name=%FE", "name=%C3"] {
            assert!(
                matches!(
                    query_value(Some(bad), "name"),
                    Err(RouteError::BadRequest(_))
                ),
                "{bad}"
            );
        }
        // U+FFFD itself is a valid name, distinct from the invalid bytes above.
        assert_eq!(
            query_value(Some("name=%EF%BF%BD"), "name"),
            Ok(Some("\u{FFFD}".into()))
        );
    }
}
