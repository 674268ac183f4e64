//! The `http` capability: outbound `wasi:http` requests only to granted `scheme://host[:port]`
//! entries, and never to private or loopback addresses unless the operator allows them; the
//! connection goes to the address that was checked ([`pinned`]).

mod pace;
mod pinned;

use super::phases::{CallData, HostCapability, Prepare};
use crate::error::{Capability, Denial, Denials, GrantError};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
};

/// The http capability.
pub(crate) struct Http;

/// `http = ["https://registry.terraform.io", "https://*.amazonaws.com"]`, and optionally
/// `http_pace = "1s"`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpRequest {
    /// `scheme://host[:port]` entries; `*.domain` and `:*` wildcards.
    pub http: Vec<String>,
    /// At most one request to each URL (scheme, host, port and path) this often, across all of
    /// the plugin's calls: what a rate-limited endpoint such as a Slack webhook asks.
    pub http_pace: Option<String>,
}

/// The operator's `http` list and private-address switch.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpOperator {
    /// Keeps only these of the requested entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<String>>,
    /// Let granted names resolve to private or loopback addresses.
    pub allow_private_http: bool,
}

/// The hosts in force.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HttpGrant {
    /// The entries as written.
    pub http_entries: Vec<String>,
    /// Granted names may resolve to private or loopback addresses.
    pub allow_private_http: bool,
    /// Requests to one URL are at least this far apart.
    #[serde(skip_serializing_if = "Option::is_none", with = "pace_as_text")]
    pub http_pace: Option<std::time::Duration>,
    #[serde(skip)]
    rules: Vec<HostRule>,
}

/// A pace as `1s`, the way `plugin.toml` writes it.
mod pace_as_text {
    pub(super) fn serialize<S: serde::Serializer>(
        pace: &Option<std::time::Duration>,
        out: S,
    ) -> Result<S::Ok, S::Error> {
        match pace {
            Some(pace) => out.serialize_str(&humantime::format_duration(*pace).to_string()),
            None => out.serialize_none(),
        }
    }
}

/// One parsed `http` entry: `https://api.example.com`, `https://*.example.com`,
/// `http://host:8080`, `http://host:*` (any port), `https://*` (any host: in a plugin.toml only,
/// as a ceiling the operator fills in with the hosts it names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRule {
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

impl HostRule {
    /// Parses an entry, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<HostRule, String> {
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
        // `[v6]` or `[v6]:port`: the brackets keep the address's colons apart from the port's.
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (addr, after) = bracketed.split_once(']').ok_or_else(bad)?;
            addr.parse::<Ipv6Addr>()
                .map_err(|_| format!("http grant `{text}`: `{addr}` is not an IPv6 address"))?;
            let port = match after {
                "" => Port::Default,
                ":*" => Port::Any,
                p => Port::Exactly(
                    p.strip_prefix(':')
                        .and_then(|p| p.parse::<u16>().ok())
                        .ok_or_else(bad)?,
                ),
            };
            (addr, port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, "*")) => (h, Port::Any),
                Some((h, p)) => (h, Port::Exactly(p.parse::<u16>().map_err(|_| bad())?)),
                None => (rest, Port::Default),
            }
        };
        // An IPv6 address must be bracketed, or its last group would read as the port.
        if host.is_empty() || (host.contains(':') && !rest.starts_with('[')) {
            return Err(format!(
                "http grant `{text}`: write an IPv6 address in brackets, e.g. `http://[::1]:8080`"
            ));
        }
        Ok(HostRule {
            scheme: scheme.to_string(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme == scheme && self.allows_host(host) && self.allows_port(port)
    }

    fn allows_host(&self, host: &str) -> bool {
        match self.host.strip_prefix("*.") {
            _ if self.is_any_host() => true,
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        }
    }

    fn allows_port(&self, port: u16) -> bool {
        match self.port {
            Port::Default => port == self.default_port(),
            Port::Any => true,
            Port::Exactly(p) => p == port,
        }
    }

    fn default_port(&self) -> u16 {
        if self.scheme == "https" { 443 } else { 80 }
    }

    /// `scheme://*`: any host.
    fn is_any_host(&self) -> bool {
        self.host == "*"
    }

    /// Whether everything `other` allows, this allows too.
    fn covers(&self, other: &HostRule) -> bool {
        let host = match other.host.strip_prefix("*.") {
            _ if other.is_any_host() => self.is_any_host(),
            // `*.b.example.com` is within `*.example.com`.
            Some(domain) => self.is_any_host() || self.allows_host(&format!("x.{domain}")),
            None => self.allows_host(&other.host),
        };
        let port = match other.port {
            Port::Any => self.port == Port::Any,
            Port::Default => self.allows_port(other.default_port()),
            Port::Exactly(p) => self.allows_port(p),
        };
        self.scheme == other.scheme && host && port
    }
}

/// One call's `wasi:http` context and the hooks that enforce the grant.
pub(crate) struct HttpState {
    ctx: WasiHttpCtx,
    policy: HttpPolicy,
}

struct HttpPolicy {
    plugin: String,
    rules: Vec<HostRule>,
    allow_private: bool,
    pace: Option<std::time::Duration>,
    denials: Denials,
}

impl HostCapability for Http {
    const NAME: Capability = Capability::Http;
    const REQUEST_KEYS: &'static [&'static str] = &["http", "http_pace"];
    const OPERATOR_KEYS: &'static [&'static str] = &["http", "allow_private_http"];
    type Request = HttpRequest;
    type Operator = HttpOperator;
    type Grant = HttpGrant;
    type State = HttpState;

    /// `wasi:http` is linked with its own view of the store (below), not through `state`.
    fn link<T: CallData>(
        linker: &mut Linker<T>,
        _: fn(&mut T) -> &mut HttpState,
    ) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }

    /// The requested entries, or, when the operator names entries, those of them within a
    /// requested one. A requested `scheme://*` (any host) grants only what the operator names.
    fn grant(request: &HttpRequest, operator: &HttpOperator) -> Result<HttpGrant, GrantError> {
        let parse = |entries: &[String]| -> Result<Vec<HostRule>, GrantError> {
            entries
                .iter()
                .map(|e| HostRule::parse(e).map_err(|e| GrantError::new(Self::NAME, e)))
                .collect()
        };
        // Every entry must parse, granted or not: a typo is an error, not a silent denial.
        let requested = parse(&request.http)?;
        let http_entries: Vec<String> = match &operator.http {
            None => request
                .http
                .iter()
                .zip(&requested)
                .filter(|(_, rule)| !rule.is_any_host())
                .map(|(entry, _)| entry.clone())
                .collect(),
            Some(named) => {
                let mut kept = Vec::new();
                for (entry, rule) in named.iter().zip(parse(named)?) {
                    if requested.iter().any(|r| r.covers(&rule)) && !kept.contains(entry) {
                        kept.push(entry.clone());
                    }
                }
                kept
            }
        };
        let rules = http_entries
            .iter()
            .map(|e| HostRule::parse(e))
            .collect::<Result<_, _>>()
            .map_err(|e| GrantError::new(Self::NAME, e))?;
        let http_pace = request
            .http_pace
            .as_deref()
            .map(|text| match crate::limits::parse_duration(text) {
                Ok(pace) if pace <= pace::MAX_PACE => Ok(pace),
                Ok(_) => Err(format!(
                    "http_pace `{text}` is longer than {}",
                    humantime::format_duration(pace::MAX_PACE)
                )),
                Err(e) => Err(format!("http_pace `{text}`: {e}")),
            })
            .transpose()
            .map_err(|e| GrantError::new(Self::NAME, e))?;
        Ok(HttpGrant {
            http_entries,
            allow_private_http: operator.allow_private_http,
            http_pace,
            rules,
        })
    }

    fn prepare(grant: &HttpGrant, cx: &mut Prepare<'_>) -> Result<HttpState, String> {
        Ok(HttpState {
            ctx: WasiHttpCtx::new(),
            policy: HttpPolicy {
                plugin: cx.plugin.to_string(),
                rules: grant.rules.clone(),
                allow_private: grant.allow_private_http,
                pace: grant.http_pace,
                denials: cx.denials.clone(),
            },
        })
    }
}

impl HttpState {
    /// The `wasi:http` view of a call's store.
    pub(crate) fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView {
            hooks: &mut self.policy,
            table,
            ctx: &mut self.ctx,
        }
    }
}

type Response = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

impl HttpPolicy {
    fn refuse(&self, denial: Denial) -> Box<dyn Future<Output = Result<Response, Error>> + Send> {
        self.denials.refuse(denial);
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

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
        if !self.rules.iter().any(|g| g.allows(&scheme, &host, port)) {
            return self.refuse(Denial::new(
                Capability::Http,
                format!("{url} is not granted"),
            ));
        }
        let allow_private = self.allow_private;
        let denials = self.denials.clone();
        let paced = self.pace.map(|every| {
            let path = request.uri().path();
            (self.plugin.clone(), format!("{url}{path}"), every)
        });
        Box::new(async move {
            if let Some((plugin, url, every)) = &paced {
                pace::wait_turn(plugin, url, *every).await;
            }
            // Resolve once, check every address the name has (so a granted name cannot be
            // pointed at the host's own services or the internal network), and connect to
            // the first of the checked ones: no second lookup can be answered differently.
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| Error::DnsError {
                    rcode: None,
                    info_code: None,
                })?
                .collect();
            if !allow_private && let Some(addr) = addrs.iter().find(|a| is_internal(a.ip())) {
                denials.refuse(
                    Denial::new(
                        Capability::Http,
                        format!(
                            "{url} resolves to {}, a private, loopback or reserved address",
                            addr.ip()
                        ),
                    )
                    .hint("the operator can allow private addresses"),
                );
                return Err(Error::HttpRequestDenied);
            }
            let addr = *addrs.first().ok_or(Error::DestinationNotFound)?;
            let to = pinned::Destination {
                addr,
                host,
                tls: scheme == "https",
            };
            pinned::send(to, request, options).await
        })
    }
}

/// Loopback, private, link-local (cloud metadata), CGNAT, benchmarking, reserved, unspecified,
/// broadcast and multicast addresses; for IPv6 also unique-local and site-local, and every
/// form that carries an IPv4 address inside (mapped, compatible, NAT64, 6to4, Teredo), judged
/// by the address it carries.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_internal_v4(v4);
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // site local fec0::/10 (deprecated, still routed)
                || (seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 0x0001) // local NAT64 64:ff9b:1::/48
        }
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT 100.64.0.0/10
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240 // reserved 240.0.0.0/4
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments 192.0.0.0/24
}

/// The IPv4 address an IPv6 address carries, in any of the forms a host or gateway would
/// translate into IPv4 traffic.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = v6.segments();
    let tail = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4); // ::ffff:a.b.c.d
    }
    if seg[..6] == [0; 6] && !(v6.is_loopback() || v6.is_unspecified()) {
        return Some(tail(seg[6], seg[7])); // IPv4-compatible ::a.b.c.d
    }
    if seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2..6] == [0; 4] {
        return Some(tail(seg[6], seg[7])); // NAT64 well-known prefix 64:ff9b::/96
    }
    if seg[0] == 0x2002 {
        return Some(tail(seg[1], seg[2])); // 6to4 2002::/16
    }
    if seg[0] == 0x2001 && seg[1] == 0 {
        return Some(tail(!seg[6], !seg[7])); // Teredo 2001::/32: the client, obfuscated
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn granted(requested: &[&str], operator: Option<&[&str]>) -> Vec<String> {
        let strings = |list: &[&str]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
        let request = HttpRequest {
            http: strings(requested),
            ..Default::default()
        };
        let operator = HttpOperator {
            http: operator.map(strings),
            allow_private_http: false,
        };
        Http::grant(&request, &operator).unwrap().http_entries
    }

    #[test]
    fn any_host_is_a_ceiling_the_operator_fills_in() {
        let any = ["https://*", "http://*:*"];
        assert!(
            granted(&any, None).is_empty(),
            "nothing until the operator names hosts"
        );
        assert_eq!(
            granted(
                &any,
                Some(&["https://api.example.com", "http://127.0.0.1:8080"])
            ),
            ["https://api.example.com", "http://127.0.0.1:8080"]
        );
        // `https://*` is the default port only.
        assert!(granted(&["https://*"], Some(&["https://a.example.com:8443"])).is_empty());
        assert_eq!(granted(&any, Some(&["https://*"])), ["https://*"]);
        assert!(
            HostRule::parse("https://*")
                .unwrap()
                .allows("https", "anything.io", 443)
        );
    }

    #[test]
    fn the_operator_narrows_within_what_was_requested_never_beyond() {
        let requested = ["https://*.example.com", "http://localhost:*"];
        assert_eq!(granted(&requested, None), requested);
        assert_eq!(
            granted(
                &requested,
                Some(&[
                    "https://api.example.com",
                    "https://*.eu.example.com",
                    "https://example.com",
                    "https://api.example.org",
                    "http://localhost:9000",
                    "https://localhost"
                ])
            ),
            [
                "https://api.example.com",
                "https://*.eu.example.com",
                "http://localhost:9000"
            ]
        );
        let bad = HttpOperator {
            http: Some(vec!["not a url".into()]),
            allow_private_http: false,
        };
        let request = HttpRequest {
            http: vec!["https://*".into()],
            ..Default::default()
        };
        assert!(Http::grant(&request, &bad).is_err());
    }

    #[test]
    fn rules_match_scheme_host_and_port() {
        let g = HostRule::parse("https://*.example.com").unwrap();
        assert!(g.allows("https", "api.example.com", 443));
        assert!(!g.allows("https", "example.com", 443));
        assert!(!g.allows("http", "api.example.com", 80));
        assert!(!g.allows("https", "api.example.com.evil.io", 443));
        let g = HostRule::parse("http://localhost:8080").unwrap();
        assert!(g.allows("http", "localhost", 8080));
        assert!(!g.allows("http", "localhost", 8081));
        let g = HostRule::parse("http://localhost:*").unwrap();
        assert!(g.allows("http", "localhost", 31337));
        assert!(HostRule::parse("ftp://x").is_err());
        assert!(HostRule::parse("https://x/path").is_err());
        // IPv6 literals, bracketed as in URLs; the host compared is the bare address.
        let g = HostRule::parse("http://[::1]:8080").unwrap();
        assert!(g.allows("http", "::1", 8080));
        assert!(!g.allows("http", "::1", 80));
        let g = HostRule::parse("https://[2001:db8::1]").unwrap();
        assert!(g.allows("https", "2001:db8::1", 443));
        assert!(HostRule::parse("http://[::1:8080").is_err());
        assert!(HostRule::parse("http://[nope]:80").is_err());
        assert!(HostRule::parse("http://::1:80").is_err());
    }

    /// The connection goes to the address the policy checked, whatever the name would resolve
    /// to now: here it resolves to nothing at all.
    #[tokio::test]
    async fn requests_go_to_the_checked_address_with_the_plugins_host() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                head.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let body = http_body_util::Empty::<hyper::body::Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::get("http://rebound.invalid:8080/health?x=1")
            .header(http::header::HOST, "rebound.invalid:8080")
            .body(body)
            .unwrap();
        let to = pinned::Destination {
            addr,
            host: "rebound.invalid".into(),
            tls: false,
        };
        let (response, io) = pinned::send(to, request, None).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        Box::into_pin(io).await.unwrap();
        let head = server.await.unwrap();
        assert!(head.starts_with("GET /health?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("host: rebound.invalid:8080"),
            "{head}"
        );
    }

    #[test]
    fn the_operator_narrows_and_a_bad_entry_is_refused() {
        let request = HttpRequest {
            http: vec![
                "https://registry.terraform.io".into(),
                "https://*.amazonaws.com".into(),
            ],
            ..Default::default()
        };
        let all = Http::grant(&request, &HttpOperator::default()).unwrap();
        assert_eq!(all.rules.len(), 2);
        assert!(!all.allow_private_http);
        let narrowed = Http::grant(
            &request,
            &HttpOperator {
                http: Some(vec!["https://registry.terraform.io".into()]),
                allow_private_http: false,
            },
        )
        .unwrap();
        assert_eq!(narrowed.http_entries, ["https://registry.terraform.io"]);
        let bad = HttpRequest {
            http: vec!["ftp://x".into()],
            ..Default::default()
        };
        let err = Http::grant(&bad, &HttpOperator::default()).unwrap_err();
        assert_eq!(err.capability, Some(Capability::Http));
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
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
            // IPv4-compatible, NAT64, 6to4 and Teredo forms of internal IPv4 addresses.
            "::127.0.0.1",
            "::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo client 127.0.0.1
            "fec0::1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:4700::1111",
            "8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "198.20.0.1",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
