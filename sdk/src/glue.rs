//! Glue every export shares: parsing the `with` block, running the plugin's own checks, and
//! logging panics before the instance traps.
//!
//! [`crate::step_plugin!`], [`crate::trigger_plugin!`] and [`crate::notifier_plugin!`] all go
//! through these, so a bad config reads the same whichever kind of plugin rejects it.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

/// Deserializes a `with` block. Empty text and `null` count as `{}`, so a config whose fields are
/// all optional works for a step with no `with`. Errors are serde's message without JSON
/// positions (the JSON is machine-made; positions in it mean nothing to the workflow author).
pub fn parse_config<C: DeserializeOwned>(json: &str) -> Result<C, Error> {
    let value = if json.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_str::<Value>(json)? {
            Value::Null => Value::Object(Default::default()),
            value => value,
        }
    };
    C::deserialize(value).map_err(Error::from)
}

/// The config for a call: parsed, then `check`ed (the plugin's `validate`). Errors read
/// ``invalid `with` for {kind}: …``.
pub(crate) fn checked_config<C: DeserializeOwned>(
    json: &str,
    check: impl FnOnce(&C) -> Result<(), Error>,
    kind: &str,
) -> Result<C, Error> {
    parse_config::<C>(json)
        .and_then(|config| check(&config).map(|()| config))
        .map_err(|e| e.context(format!("invalid `with` for {kind}")))
}

/// A WIT `validate` export: parse, `check`, and each line of the error is one entry.
pub(crate) fn validate_lines<C: DeserializeOwned>(
    json: &str,
    check: impl FnOnce(&C) -> Result<(), Error>,
) -> Result<(), Vec<String>> {
    parse_config::<C>(json)
        .and_then(|config| check(&config))
        .map_err(|e| e.message().lines().map(str::to_string).collect())
}

/// JSON text the host sent (`what` names it in the error); empty text is `null`.
pub(crate) fn host_json(text: &str, what: &str) -> Result<Value, Error> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| Error::new(format!("the host sent invalid {what}: {e}")))
}

/// A panic traps the instance and the host only learns "wasm trap"; log the message first.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            crate::log::error(format!("plugin panicked{location}: {message}"));
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        n: u32,
    }

    fn small(config: &Config) -> Result<(), Error> {
        if config.n > 5 {
            return Err("`n` must be at most 5\nsecond line".into());
        }
        Ok(())
    }

    #[test]
    fn empty_config_is_an_empty_object() {
        #[derive(Deserialize)]
        struct AllOptional {
            #[allow(dead_code, reason = "only deserialized")]
            x: Option<u32>,
        }
        assert!(parse_config::<AllOptional>("").is_ok());
        assert!(parse_config::<AllOptional>("null").is_ok());
    }

    #[test]
    fn checked_config_names_the_kind() {
        assert_eq!(
            checked_config::<Config>("{}", small, "trigger")
                .unwrap_err()
                .message(),
            "invalid `with` for trigger: missing field `n`"
        );
        assert_eq!(
            checked_config::<Config>(r#"{"n": 9}"#, small, "notifier")
                .unwrap_err()
                .message(),
            "invalid `with` for notifier: `n` must be at most 5\nsecond line"
        );
        assert_eq!(
            checked_config::<Config>(r#"{"n": 1}"#, small, "step")
                .unwrap()
                .n,
            1
        );
    }

    #[test]
    fn validate_splits_lines() {
        assert_eq!(
            validate_lines::<Config>(r#"{"n": 9}"#, small).unwrap_err(),
            vec![
                "`n` must be at most 5".to_string(),
                "second line".to_string()
            ]
        );
        assert!(validate_lines::<Config>(r#"{"n": 2}"#, small).is_ok());
    }

    #[test]
    fn host_json_is_null_when_empty() {
        assert_eq!(host_json(" ", "details").unwrap(), Value::Null);
        assert_eq!(host_json(r#"{"a":1}"#, "details").unwrap()["a"], 1);
        assert!(
            host_json("{", "details")
                .unwrap_err()
                .message()
                .starts_with("the host sent invalid details: ")
        );
    }
}
