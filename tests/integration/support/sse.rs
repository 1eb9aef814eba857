//! `TestSse`: a client of `GET /api/v1/stream` that parses the
//! `text/event-stream` records, with a deadline on every wait; and the
//! parser alone, for a `curl -N` process's output.

use pytake::protocol::Event;
use serde_json::Value;

use super::{TestServer, DEADLINE};

/// One record of the stream: the fields it had, in the SSE format's terms.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Record {
    pub id: Option<String>,
    pub event: Option<String>,
    /// `data:` lines, joined with `\n` as a browser joins them.
    pub data: Option<String>,
    pub retry: Option<u64>,
    pub comments: Vec<String>,
}

impl Record {
    /// The event a record carries, checked: `id:` and `event:` agree with
    /// the JSON, which is on one `data:` line.
    pub fn event(&self) -> Event {
        let data = self
            .data
            .as_deref()
            .unwrap_or_else(|| panic!("no data: {self:?}"));
        assert!(!data.contains('\n'), "data over several lines: {data}");
        let event: Event = serde_json::from_str(data).expect("data is an Event");
        assert_eq!(self.id.as_deref(), Some(event.id.to_string().as_str()));
        assert_eq!(self.event.as_deref(), Some(event.event_type.as_str()));
        event
    }

    pub fn is_event(&self) -> bool {
        self.data.is_some()
    }
}

/// Builds records from lines of the stream.
#[derive(Default)]
pub struct Parser {
    record: Record,
    fields: usize,
}

impl Parser {
    /// Takes one line (without its `\n`); a blank line ends a record.
    pub fn line(&mut self, line: &str) -> Option<Record> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if self.fields == 0 {
                return None;
            }
            self.fields = 0;
            return Some(std::mem::take(&mut self.record));
        }
        self.fields += 1;
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_string();
        let r = &mut self.record;
        match name {
            "" => r.comments.push(value),
            "id" => r.id = Some(value),
            "event" => r.event = Some(value),
            "retry" => r.retry = Some(value.parse().expect("retry is a number")),
            "data" => {
                r.data = Some(match r.data.take() {
                    Some(before) => format!("{before}\n{value}"),
                    None => value,
                })
            }
            other => panic!("unknown SSE field `{other}` in `{line}`"),
        }
        None
    }
}

/// An open stream.
pub struct TestSse {
    pub response_headers: reqwest::header::HeaderMap,
    response: reqwest::Response,
    buffer: String,
    parser: Parser,
    records: std::collections::VecDeque<Record>,
}

/// How a stream request is made.
#[derive(Default)]
pub struct Ask<'a> {
    /// Sent as `Authorization: Bearer`.
    pub bearer: Option<&'a str>,
    /// The query string, without `?`.
    pub query: &'a str,
    pub last_event_id: Option<&'a str>,
}

impl TestSse {
    /// Opens a stream; on a refusal, the status and JSON body.
    pub async fn open(server: &TestServer, ask: Ask<'_>) -> Result<TestSse, (u16, Value)> {
        let url = format!("{}/api/v1/stream?{}", server.url, ask.query);
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = ask.bearer {
            request = request.bearer_auth(token);
        }
        if let Some(id) = ask.last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = tokio::time::timeout(DEADLINE, request.send())
            .await
            .expect("stream request timed out")
            .expect("stream request");
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            return Err((status, body));
        }
        Ok(TestSse {
            response_headers: response.headers().clone(),
            response,
            buffer: String::new(),
            parser: Parser::default(),
            records: Default::default(),
        })
    }

    /// Opens a stream that must be accepted.
    pub async fn ok(server: &TestServer, ask: Ask<'_>) -> TestSse {
        match TestSse::open(server, ask).await {
            Ok(stream) => stream,
            Err((status, body)) => panic!("stream refused with {status}: {body}"),
        }
    }

    /// The next record, or `None` when the server ended the stream.
    pub async fn record(&mut self) -> Option<Record> {
        loop {
            if let Some(record) = self.records.pop_front() {
                return Some(record);
            }
            let chunk = tokio::time::timeout(DEADLINE, self.response.chunk())
                .await
                .expect("no record within the deadline")
                .ok()??;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
            while let Some(end) = self.buffer.find('\n') {
                let line: String = self.buffer.drain(..=end).collect();
                if let Some(record) = self.parser.line(&line[..line.len() - 1]) {
                    self.records.push_back(record);
                }
            }
        }
    }

    /// The next event, skipping comments (keep-alives) and the `retry:`
    /// hint.
    pub async fn event(&mut self) -> Event {
        loop {
            let record = self.record().await.expect("the stream ended");
            if record.is_event() {
                return record.event();
            }
        }
    }

    /// The records until the server ends the stream.
    pub async fn rest(&mut self) -> Vec<Record> {
        let mut rest = Vec::new();
        while let Some(record) = self.record().await {
            rest.push(record);
        }
        rest
    }

    /// Nothing arrives for a moment (a duplicate or a stray event would).
    pub async fn quiet(&mut self) {
        let wait = std::time::Duration::from_millis(300);
        if let Ok(record) = tokio::time::timeout(wait, self.record()).await {
            panic!("unexpected record: {record:?}");
        }
    }
}
