//! Diagnostics on stderr, as the text sockit has always printed, or, with
//! `--log-format json`, one JSON object a line: `ts`, `level`, `event`,
//! `message` and the event's fields (`docs/LOGS.md` lists them).
//!
//! Two kinds of line go through here:
//! - `tracing` events, filtered by `-v`/`-q`, through [`Layer`]; an
//!   event names itself with an `event` field (`connected`, `closed`,
//!   `refused`, `error`); one without is `log`;
//! - notices printed whatever the level, because scripts read them: the
//!   `listening on` line, a certificate's banner, a transfer's progress
//!   in JSON mode ([`notice`], [`listening`]).
//!
//! Results stay on stdout (`--json`); this is only stderr.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::report::json_str;

/// Whether lines are JSON.
static JSON: AtomicBool = AtomicBool::new(false);

/// Chooses JSON (`--log-format json`) or text for every line after this.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether lines are JSON.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// One JSON object: `ts`, `level`, `event`, `message`, then `fields`
/// (values already JSON).
pub fn json_line(level: &str, event: &str, message: &str, fields: &[(&str, String)]) -> String {
    let mut s = String::with_capacity(96 + message.len());
    let _ = write!(
        s,
        "{{\"ts\":{},\"level\":{},\"event\":{},\"message\":{}",
        json_str(&crate::report::rfc3339(std::time::SystemTime::now())),
        json_str(level),
        json_str(event),
        json_str(message)
    );
    for (k, v) in fields {
        let _ = write!(s, ",{}:{v}", json_str(k));
    }
    s.push('}');
    s
}

/// Writes one whole line to stderr at once (a line is never split
/// between writers).
fn emit(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.write_all(b"\n");
}

/// A line printed whatever `-v`/`-q` say: `text` as it is, or the JSON
/// object for `event` with `fields` (values already JSON).
pub fn notice(event: &str, text: &str, fields: &[(&str, String)]) {
    if json() {
        emit(&json_line("info", event, text, fields));
    } else {
        emit(text);
    }
}

/// The line every listener prints once it is bound: `listening on ADDR`
/// (tests and scripts read the port from it, so it is printed even with
/// `-q`), or `{"event":"listening","addr":"ADDR",...}`.
pub fn listening(addr: impl std::fmt::Display) {
    let addr = addr.to_string();
    notice(
        "listening",
        &format!("listening on {addr}"),
        &[("addr", json_str(&addr))],
    );
}

/// The binary's last word on a failure: `sockit: SENTENCE`, or an `error`
/// event.
pub fn failure(sentence: &str) {
    if json() {
        emit(&json_line("error", "error", sentence, &[]));
    } else {
        emit(&format!("sockit: {sentence}"));
    }
}

/// The `tracing` layer that prints events as text (the message alone, as
/// before) or as JSON objects.
pub struct Layer {
    json: bool,
}

impl Layer {
    /// A layer in the format [`set_json`] chose.
    pub fn new() -> Layer {
        Layer { json: json() }
    }
}

impl Default for Layer {
    fn default() -> Layer {
        Layer::new()
    }
}

/// An event's fields, as the layer collects them.
#[derive(Default)]
struct Fields {
    message: String,
    event: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = text,
            "event" => self.event = Some(text.trim_matches('"').to_string()),
            name => self.rest.push((name, json_str(&text))),
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "event" => self.event = Some(value.to_string()),
            name => self.rest.push((name, json_str(value))),
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.rest.push((field.name(), value.to_string()));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.rest.push((field.name(), value.to_string()));
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        let v = if value.is_finite() {
            format!("{value}")
        } else {
            "null".into()
        };
        self.rest.push((field.name(), v));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.rest.push((field.name(), value.to_string()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn on_event(&self, ev: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = Fields::default();
        ev.record(&mut f);
        if !self.json {
            emit(&f.message);
            return;
        }
        let level = match *ev.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        let event = f.event.as_deref().unwrap_or("log");
        emit(&json_line(level, event, &f.message, &f.rest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_has_the_fixed_fields_first() {
        let l = json_line(
            "info",
            "closed",
            "a \"quoted\" end",
            &[("bytes_up", "12".into())],
        );
        assert!(l.starts_with("{\"ts\":\"20"), "{l}");
        assert!(
            l.ends_with(
                ",\"level\":\"info\",\"event\":\"closed\",\"message\":\"a \\\"quoted\\\" end\",\"bytes_up\":12}"
            ),
            "{l}"
        );
    }
}
