//! Outbound HTTP through `wasi:http`: a small blocking client. The host only lets requests through
//! to the `scheme://host[:port]` entries granted in plugin.toml.
//!
//! ```no_run
//! # fn f() -> Result<(), wasmops_sdk::Error> {
//! use wasmops_sdk::http::Request;
//! let resp = Request::get("https://api.example.com/health").header("accept", "application/json").send()?;
//! assert_eq!(resp.status, 200);
//! # Ok(()) }
//! ```

use crate::Error;
use std::time::Duration;

/// An outgoing request; build it, then [`Request::send`].
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`…
    pub method: String,
    /// An absolute `http://` or `https://` URL; its host must be granted.
    pub url: String,
    /// Headers in order, names as given.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
    /// Give up after this long; the step's own deadline applies regardless.
    pub timeout: Option<Duration>,
}

/// A complete response (the body is read to the end).
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers in order, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::new(format!("response body is not the expected JSON: {e}")))
    }

    /// A header's value, its name compared in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Request {
    /// A request with no headers, body or timeout.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// A `GET`.
    pub fn get(url: impl Into<String>) -> Request {
        Request::new("GET", url)
    }

    /// A `POST`.
    pub fn post(url: impl Into<String>) -> Request {
        Request::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// A JSON body with its content type.
    pub fn json(self, value: &impl serde::Serialize) -> Result<Request, Error> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Gives up after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Sends it through the host's `wasi:http`, which refuses hosts not granted to the plugin.
    #[cfg(target_arch = "wasm32")]
    pub fn send(self) -> Result<Response, Error> {
        wasi_client::send(self)
    }

    /// Outside a wasm host there is no `wasi:http`; plugin logic can still be unit-tested.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn send(self) -> Result<Response, Error> {
        Err(Error::new(format!(
            "http: no wasm host to send {} {}",
            self.method, self.url
        )))
    }
}

/// `scheme://authority/path?query` → its parts.
#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, reason = "used only through the wasm host import")
)]
fn split_url(url: &str) -> Result<(&str, &str, &str), Error> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::new(format!("`{url}` is not an absolute http(s) URL")))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(Error::new(format!("`{url}` has no host")));
    }
    Ok((scheme, authority, path))
}

#[cfg(target_arch = "wasm32")]
mod wasi_client {
    use super::{Request, Response, split_url};
    use crate::Error;
    use crate::bindings::wasi::http::outgoing_handler;
    use crate::bindings::wasi::http::types::{
        ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    };
    use crate::bindings::wasi::io::streams::StreamError;

    pub fn send(req: Request) -> Result<Response, Error> {
        let (scheme, authority, path) = split_url(&req.url)?;
        let fields: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
            .collect();
        let headers = Fields::from_list(&fields)
            .map_err(|e| Error::new(format!("http: bad header: {e:?}")))?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match req.method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        };
        let scheme = match scheme {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => Scheme::Other(other.to_string()),
        };
        let invalid = |what: &str| Error::new(format!("http: invalid {what} in {}", req.url));
        outgoing
            .set_method(&method)
            .map_err(|_| invalid("method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|_| invalid("scheme"))?;
        outgoing
            .set_authority(Some(authority))
            .map_err(|_| invalid("host"))?;
        outgoing
            .set_path_with_query(Some(path))
            .map_err(|_| invalid("path"))?;
        let options = req.timeout.map(|t| {
            let options = RequestOptions::new();
            let nanos = t.as_nanos().min(u64::MAX as u128) as u64;
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            options
        });
        let body = outgoing
            .body()
            .map_err(|_| Error::new("http: request body unavailable"))?;
        let future = outgoing_handler::handle(outgoing, options).map_err(|e| describe(&req, e))?;
        {
            let stream = body
                .write()
                .map_err(|_| Error::new("http: request body unavailable"))?;
            for chunk in req.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| Error::new(format!("http: writing the body: {e:?}")))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| describe(&req, e))?;

        let response = loop {
            match future.get() {
                Some(result) => break result,
                None => future.subscribe().block(),
            }
        };
        let response = response
            .map_err(|_| Error::new("http: the response was already taken"))?
            .map_err(|e| describe(&req, e))?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|_| Error::new("http: response body unavailable"))?;
        let mut body = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|_| Error::new("http: response body unavailable"))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(bytes) => body.extend_from_slice(&bytes),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(Error::new(format!("http: reading the response: {e:?}"))),
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn describe(req: &Request, e: ErrorCode) -> Error {
        match e {
            ErrorCode::HttpRequestDenied => Error::denial(format!(
                "http: {} {} was denied by the sandbox (is it in the plugin's `http` grant?)",
                req.method, req.url
            )),
            other => Error::new(format!(
                "http: {} {} failed: {other:?}",
                req.method, req.url
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            split_url("https://api.example.com/v1/x?y=1").unwrap(),
            ("https", "api.example.com", "/v1/x?y=1")
        );
        assert_eq!(
            split_url("http://localhost:8080").unwrap(),
            ("http", "localhost:8080", "/")
        );
        assert!(split_url("localhost/x").is_err());
    }
}
