//! Outbound `wasi:http` for plugins: only to granted `scheme://host[:port]` entries, and never to
//! private or loopback addresses unless the operator allows them.

use super::host::Denials;
use http_body_util::BodyExt;
use std::net::IpAddr;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// One `http` grant: `https://api.example.com`, `https://*.example.com`, `http://host:8080`,
/// `http://host:*` (any port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpGrant {
    scheme: String,
    /// Lower-case; a leading `*.` matches any subdomain (not the bare domain).
    host: String,
    port: Port,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Port {
    Default,
    Any,
    Exactly(u16),
}

impl HttpGrant {
    pub fn parse(text: &str) -> Result<HttpGrant, String> {
        let bad = || format!("http grant `{text}` is not `scheme://host[:port]`");
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "http grant `{text}`: the scheme must be http or https"
            ));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.is_empty() {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, "*")) => (h, Port::Any),
            Some((h, p)) => (h, Port::Exactly(p.parse::<u16>().map_err(|_| bad())?)),
            None => (rest, Port::Default),
        };
        Ok(HttpGrant {
            scheme: scheme.to_string(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host_ok = match self.host.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        };
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        let port_ok = match self.port {
            Port::Default => port == default_port,
            Port::Any => true,
            Port::Exactly(p) => p == port,
        };
        self.scheme == scheme && host_ok && port_ok
    }
}

/// What one plugin call may reach; the `wasi:http` hooks of its store.
pub struct HttpPolicy {
    pub grants: Vec<HttpGrant>,
    /// Operator setting: allow granted names that resolve to private or loopback addresses.
    pub allow_private: bool,
    pub denials: Denials,
}

impl HttpPolicy {
    fn denied(&self, reason: String) -> Box<dyn Future<Output = Result<Response, Error>> + Send> {
        self.denials.push(reason);
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

type Response = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<Response, Error>> + Send> {
        drop(fut);
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_string();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let url = format!("{scheme}://{host}:{port}");
        if !self.grants.iter().any(|g| g.allows(&scheme, &host, port)) {
            return self.denied(format!("http: {url} is not granted (capability `http`)"));
        }
        let allow_private = self.allow_private;
        let denials = self.denials.clone();
        Box::new(async move {
            if !allow_private {
                // Check every address the name resolves to, so a granted name cannot be
                // pointed at the host's own services or the internal network.
                let addrs = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|_| Error::DnsError {
                        rcode: None,
                        info_code: None,
                    })?;
                for addr in addrs {
                    if is_internal(addr.ip()) {
                        denials.push(format!(
                            "http: {url} resolves to {}, a private or loopback address (capability `http`; the operator can allow private addresses)",
                            addr.ip()
                        ));
                        return Err(Error::HttpRequestDenied);
                    }
                }
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// Loopback, private, link-local (cloud metadata), CGNAT, unspecified and multicast addresses.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_scheme_host_and_port() {
        let g = HttpGrant::parse("https://*.example.com").unwrap();
        assert!(g.allows("https", "api.example.com", 443));
        assert!(!g.allows("https", "example.com", 443));
        assert!(!g.allows("http", "api.example.com", 80));
        assert!(!g.allows("https", "api.example.com.evil.io", 443));
        let g = HttpGrant::parse("http://localhost:8080").unwrap();
        assert!(g.allows("http", "localhost", 8080));
        assert!(!g.allows("http", "localhost", 8081));
        let g = HttpGrant::parse("http://localhost:*").unwrap();
        assert!(g.allows("http", "localhost", 31337));
        assert!(HttpGrant::parse("ftp://x").is_err());
        assert!(HttpGrant::parse("https://x/path").is_err());
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
