//! `Reply`: what a [`Router`](crate::Router) closure's return value sends.

use std::fmt;

use serde_json::Value;

/// What a [`Router`](crate::Router) closure hands back: the message that goes to the sender,
/// nothing, or an error.
///
/// | the closure returns | the sender gets |
/// |---|---|
/// | `()` | nothing |
/// | a [`serde_json::Value`] | that value in the request's codec (JSON text or MessagePack binary), unless it is `Null` |
/// | `Option<V>` | nothing for `None`; what `V` sends for `Some` |
/// | `Result<V, E>` | what `V` sends for `Ok`; the error event with `e.to_string()` for `Err(e)` |
///
/// When the request carried an `"id"` and the reply is a JSON object, the
/// reply gets the same `"id"` (unless it set one itself), and so does an error
/// event: a client can match answers to questions.
///
/// Implement it for your own types to return them straight from a closure:
///
/// ```
/// use serde_json::{json, Value};
/// use wisp::Reply;
///
/// struct Sum(i64);
///
/// impl Reply for Sum {
///     fn into_reply(self) -> Result<Option<Value>, String> {
///         Ok(Some(json!({ "event": "sum", "value": self.0 })))
///     }
/// }
///
/// assert_eq!(Sum(3).into_reply(), Ok(Some(json!({ "event": "sum", "value": 3 }))));
/// ```
pub trait Reply {
    /// `Ok(Some(value))` sends `value`, `Ok(None)` sends nothing, `Err(error)`
    /// sends the router's error event with `error` as its text.
    fn into_reply(self) -> Result<Option<Value>, String>;
}

impl Reply for () {
    fn into_reply(self) -> Result<Option<Value>, String> {
        Ok(None)
    }
}

impl Reply for Value {
    fn into_reply(self) -> Result<Option<Value>, String> {
        Ok((!self.is_null()).then_some(self))
    }
}

impl<V: Reply> Reply for Option<V> {
    fn into_reply(self) -> Result<Option<Value>, String> {
        self.map_or(Ok(None), Reply::into_reply)
    }
}

impl<V: Reply, E: fmt::Display> Reply for Result<V, E> {
    fn into_reply(self) -> Result<Option<Value>, String> {
        self.map_err(|e| e.to_string())?.into_reply()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies() {
        assert_eq!(().into_reply(), Ok(None));
        assert_eq!(Value::Null.into_reply(), Ok(None));
        assert_eq!(json!({"a": 1}).into_reply(), Ok(Some(json!({"a": 1}))));
        assert_eq!(json!(false).into_reply(), Ok(Some(json!(false))));
        assert_eq!(None::<Value>.into_reply(), Ok(None));
        assert_eq!(Some(json!(1)).into_reply(), Ok(Some(json!(1))));
        assert_eq!(Some(()).into_reply(), Ok(None));
        assert_eq!(Ok::<_, String>(json!(2)).into_reply(), Ok(Some(json!(2))));
        assert_eq!(
            Err::<(), _>("no such user").into_reply(),
            Err("no such user".to_string())
        );
        assert_eq!(
            Ok::<_, std::fmt::Error>(Some(Err::<Value, _>(7))).into_reply(),
            Err("7".to_string())
        );
    }
}
