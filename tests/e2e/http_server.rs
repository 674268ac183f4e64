//! A small HTTP/1.1 server on 127.0.0.1 for the plugins that call out (http, slack): each test
//! gives it a handler and reads back what it was sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as the server read it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: String,
    /// When the whole request had arrived.
    pub at: std::time::Instant,
}

/// An answer: status line (`200 OK`), extra header lines (each ending in `\r\n`), body.
pub type Reply = (&'static str, String, String);

type Handler = dyn Fn(&Received, u16) -> Reply + Send + Sync;

/// Runs until the test process ends; answers each request on a thread of its own.
pub struct Server {
    pub port: u16,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    /// `handler` gets each request and the server's port.
    pub fn start(handler: impl Fn(&Received, u16) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, handler) = (recorded.clone(), handler.clone());
                std::thread::spawn(move || {
                    if let Some(request) = read_request(&stream) {
                        seen.lock().unwrap().push(request.clone());
                        let (status, extra, body) = handler(&request, port);
                        let mut stream = stream;
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                });
            }
        });
        Server { port, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

/// The request line, the headers it needs, and the body (by length or chunked).
fn read_request(stream: &TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let (mut length, mut content_type, mut chunked) = (0, String::new(), false);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "content-type" => content_type = value.trim().to_string(),
            "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    while chunked {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        body.extend_from_slice(&chunk[..size]);
        chunked = size > 0;
    }
    Some(Received {
        method,
        path,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: std::time::Instant::now(),
    })
}
