//! HTTP/1.x requests as the status server reads them (only the request line matters:
//! headers are skipped, bodies are not expected) and the status line and headers of
//! its responses (HTTP/1.0, `Connection: close`: the body ends when the connection
//! does, and `Content-Length` says how long it is).

use core::fmt::{self, Write};

/// Most bytes of a request (request line and headers) the server reads; a longer one
/// is refused with [`Status::BadRequest`].
pub const MAX_REQUEST: usize = 1024;

/// The pages the server has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// `/`: the counters as an HTML table.
    Html,
    /// `/status.json`: the counters as JSON.
    Json,
}

impl Page {
    /// The page at `path` (a query string after `?` is ignored), if there is one.
    pub fn at(path: &[u8]) -> Option<Page> {
        let path = match path.iter().position(|&b| b == b'?') {
            Some(i) => &path[..i],
            None => path,
        };
        match path {
            b"/" | b"/index.html" => Some(Page::Html),
            b"/status.json" => Some(Page::Json),
            _ => None,
        }
    }

    /// Its path.
    pub const fn path(self) -> &'static str {
        match self {
            Page::Html => "/",
            Page::Json => "/status.json",
        }
    }

    /// Its `Content-Type`.
    pub const fn content_type(self) -> &'static str {
        match self {
            Page::Html => "text/html; charset=utf-8",
            Page::Json => "application/json",
        }
    }
}

/// The response statuses the server gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200: the page follows.
    Ok = 200,
    /// 400: not an HTTP request line, or the request is longer than [`MAX_REQUEST`].
    BadRequest = 400,
    /// 404: no such page.
    NotFound = 404,
    /// 405: a method other than GET or HEAD.
    MethodNotAllowed = 405,
    /// 500: the page did not fit the response buffer.
    InternalError = 500,
}

impl Status {
    /// The reason phrase.
    pub const fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::InternalError => "Internal Server Error",
        }
    }
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// GET (`head: false`) or HEAD (`head: true`) of a page.
    Page {
        /// The page.
        page: Page,
        /// HEAD: the headers only.
        head: bool,
    },
    /// A request the server answers with this error status.
    Error(Status),
}

/// The outcome of reading the bytes received so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse {
    /// The request's header block has not ended yet (keep reading, up to
    /// [`MAX_REQUEST`]).
    Incomplete,
    /// A complete request.
    Done(Request),
}

/// Reads a request from the bytes received so far: complete once an empty line ends
/// its header block (`\r\n\r\n`, or bare `\n\n`). Only the request line is looked at:
/// `METHOD SP PATH SP HTTP/1.x`.
pub fn parse(buf: &[u8]) -> Parse {
    let end = find(buf, b"\r\n\r\n").or_else(|| find(buf, b"\n\n"));
    if end.is_none() {
        return if buf.len() >= MAX_REQUEST {
            Parse::Done(Request::Error(Status::BadRequest))
        } else {
            Parse::Incomplete
        };
    }
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = buf[..line_end].strip_suffix(b"\r").unwrap_or(&buf[..line_end]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(path), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parse::Done(Request::Error(Status::BadRequest));
    };
    if !version.starts_with(b"HTTP/1.") || !path.starts_with(b"/") {
        return Parse::Done(Request::Error(Status::BadRequest));
    }
    let head = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return Parse::Done(Request::Error(Status::MethodNotAllowed)),
    };
    Parse::Done(match Page::at(path) {
        Some(page) => Request::Page { page, head },
        None => Request::Error(Status::NotFound),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Writes the status line and headers of a response with a `body_len`-byte body of
/// `content_type`.
pub fn write_head(out: &mut impl Write, status: Status, content_type: &str, body_len: usize) -> fmt::Result {
    write!(
        out,
        "HTTP/1.0 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        status as u16,
        status.reason()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(p: Page) -> Parse {
        Parse::Done(Request::Page { page: p, head: false })
    }

    #[test]
    fn requests() {
        assert_eq!(parse(b"GET /status.json HTTP/1.0\r\n\r\n"), page(Page::Json));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"),
            page(Page::Html)
        );
        assert_eq!(parse(b"GET /?refresh=1 HTTP/1.0\n\n"), page(Page::Html));
        assert_eq!(
            parse(b"HEAD /status.json HTTP/1.0\r\n\r\n"),
            Parse::Done(Request::Page {
                page: Page::Json,
                head: true
            })
        );
        assert_eq!(parse(b"GET / HTTP/1.0\r\nHost: x\r\n"), Parse::Incomplete);
        for p in [Page::Html, Page::Json] {
            assert_eq!(Page::at(p.path().as_bytes()), Some(p));
        }
        assert_eq!(parse(b""), Parse::Incomplete);
    }

    #[test]
    fn bad_requests() {
        let err = |s| Parse::Done(Request::Error(s));
        assert_eq!(parse(b"GET /nope HTTP/1.0\r\n\r\n"), err(Status::NotFound));
        assert_eq!(parse(b"POST / HTTP/1.0\r\n\r\n"), err(Status::MethodNotAllowed));
        assert_eq!(parse(b"GET / SPDY/3\r\n\r\n"), err(Status::BadRequest));
        assert_eq!(parse(b"GET  / HTTP/1.0\r\n\r\n"), err(Status::BadRequest));
        assert_eq!(parse(b"GET x HTTP/1.0\r\n\r\n"), err(Status::BadRequest));
        assert_eq!(parse(b"\r\n\r\n"), err(Status::BadRequest));
        assert_eq!(parse(b"\xff\xfe\x00 \x01 \x02\r\n\r\n"), err(Status::BadRequest));
        // Too long without an end: refused, not read forever.
        assert_eq!(parse(&[b'a'; MAX_REQUEST]), err(Status::BadRequest));
        assert_eq!(parse(&[b'a'; MAX_REQUEST - 1]), Parse::Incomplete);
    }

    #[test]
    fn head() {
        let mut s = String::new();
        write_head(&mut s, Status::NotFound, "text/plain", 12).unwrap();
        assert_eq!(
            s,
            "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        );
    }
}
