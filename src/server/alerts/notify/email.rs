//! The email channel: a plain-text message to every `[smtp] to`, through
//! the `[smtp]` server over the TLS it names. A permanent rejection (5xx)
//! will not change by sending again, so it is dead at once; anything
//! else (4xx, no connection, a timeout) is retried with the queue's
//! backoff.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::render::{alert_facts, headline, incident_facts, intro};
use crate::config::{SmtpSettings, SmtpTls};
use crate::server::alerts::notification::{Notification, Reason};
use crate::server::queue::breaker::{Admit, Breakers};
use crate::server::queue::handlers::JobError;

/// The configured SMTP server and addresses. Its credentials live in the
/// transport, which is never printed.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// `host:port`, for messages and the circuit breaker.
    host: String,
    timeout: Duration,
}

impl Email {
    /// The channel as `[smtp]` configures it, or why it cannot send (a
    /// job's dead-letter reason).
    pub fn new(smtp: &SmtpSettings, timeout: Duration) -> Result<Email, String> {
        let Some(host) = smtp.host.as_deref().filter(|h| !h.is_empty()) else {
            return Err(
                "the email channel is not configured on this node: set [smtp] host and to".into(),
            );
        };
        if smtp.to.is_empty() {
            return Err(
                "the email channel is not configured on this node: [smtp] to names no recipient"
                    .into(),
            );
        }
        let from = mailbox("from", &smtp.from)?;
        let to = smtp
            .to
            .iter()
            .map(|t| mailbox("to", t))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match smtp.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters(host)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(name) = sysinfo::System::host_name() {
            builder = builder.hello_name(ClientId::Domain(name));
        }
        if let Some(user) = &smtp.username {
            let password = smtp.password.clone().unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Email {
            transport: builder.build(),
            from,
            to,
            host: format!("{host}:{}", smtp.port),
            timeout,
        })
    }

    /// `host:port` of the SMTP server.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub async fn send(&self, breakers: &Breakers, n: &Notification) -> Result<(), JobError> {
        let message = message(&self.from, &self.to, n).map_err(JobError::Fatal)?;
        let host = self.host.clone();
        if let Admit::Hold(until) = breakers.admit(&host) {
            return Err(JobError::Held { host, until });
        }
        let (result, answered) = match self.transport.send(message).await {
            Ok(_) => (Ok(()), true),
            Err(e) => classify(&host, &e, self.timeout),
        };
        breakers.record(&host, answered);
        result
    }
}

/// What a failed send means for the job, and whether the server was up
/// (a permanent rejection is an answer: holding this host's other jobs
/// back would not help them, so it does not count against the circuit).
fn classify(
    host: &str,
    e: &lettre::transport::smtp::Error,
    timeout: Duration,
) -> (Result<(), JobError>, bool) {
    if e.is_permanent() {
        let error = format!("{host} rejected the email for good: {e}");
        return (Err(JobError::Fatal(error)), true);
    }
    let error = if e.is_transient() {
        format!("{host} deferred the email: {e}")
    } else if e.is_timeout() {
        format!(
            "{host} did not answer within {}",
            crate::config::duration::format(timeout)
        )
    } else {
        format!("cannot send to {host}: {e}")
    };
    (Err(JobError::Retry(error)), false)
}

fn mailbox(key: &str, text: &str) -> Result<Mailbox, String> {
    text.parse()
        .map_err(|e| format!("[smtp] {key}: `{text}` is not an email address ({e})"))
}

fn tls_parameters(host: &str) -> Result<TlsParameters, String> {
    TlsParameters::new(host.to_string())
        .map_err(|e| format!("[smtp] host: cannot set up TLS for `{host}`: {e}"))
}

/// The email. Every notification of one incident is in one thread: the
/// first is `<correlation id@domain>`, the later ones reply to it, and a
/// send repeated after a lost answer keeps its Message-ID, so mail
/// clients show it once.
pub fn message(from: &Mailbox, to: &[Mailbox], n: &Notification) -> Result<Message, String> {
    let domain = from.email.domain();
    let id: String = n
        .incident
        .correlation_id
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                true => c,
                false => '-',
            },
        )
        .collect();
    let thread = format!("<{id}@{domain}>");
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(headline(n))
        .header(ContentType::TEXT_PLAIN);
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    builder = match n.reason {
        Reason::Firing => builder.message_id(Some(thread)),
        Reason::Repeat | Reason::Resolved => {
            let reason = match n.reason {
                Reason::Repeat => "repeat",
                _ => "resolved",
            };
            let own = format!("<{id}.{reason}.{}@{domain}>", n.incident.notifications);
            builder
                .message_id(Some(own))
                .in_reply_to(thread.clone())
                .references(thread)
        }
    };
    builder
        .body(body(n))
        .map_err(|e| format!("cannot make the email: {e}"))
}

/// The plain-text body: the intro, a block per alert, the incident's ids
/// and times. No line end after the last line: SMTP's end of data adds
/// it (one more would show as an empty last line).
pub fn body(n: &Notification) -> String {
    let mut out = format!("{}\n", intro(n));
    for alert in &n.alerts {
        let f = alert_facts(n, alert);
        out.push_str(&format!(
            "\n{}\n  value:      {} (threshold {})\n  condition:  {}\n  severity:   {}\n  state:      {}\n",
            f.name, f.value, f.threshold, f.condition, f.severity, f.state
        ));
    }
    out.push('\n');
    for (label, value) in incident_facts(n) {
        let mut chars = label.chars();
        let first = chars.next().map(|c| c.to_ascii_uppercase());
        let label: String = first.into_iter().chain(chars).collect();
        out.push_str(&format!("{label}: {value}\n"));
    }
    out.pop();
    out
}

#[cfg(test)]
#[path = "email_tests.rs"]
mod tests;
