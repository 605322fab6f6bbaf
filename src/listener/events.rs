//! `--json`: one JSON object per line on stdout for each relay event
//! (open, close, refused, error). A writer thread owns stdout; relays hand
//! it lines through a bounded channel, so a slow reader slows the relay
//! down instead of growing a queue.

use std::io::Write;

use crate::report::json_str;

/// Where events go; a no-op without `--json`.
#[derive(Clone, Default)]
pub struct Events {
    tx: Option<tokio::sync::mpsc::Sender<String>>,
}

/// Lines waiting for the writer at most.
const QUEUE: usize = 4096;

impl Events {
    /// Starts the writer thread when `on`; returns the sink and the thread
    /// to join once every sender is gone.
    pub fn start(on: bool) -> (Events, Option<std::thread::JoinHandle<()>>) {
        if !on {
            return (Events::default(), None);
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(QUEUE);
        let h = std::thread::spawn(move || {
            let mut out = std::io::stdout().lock();
            while let Some(line) = rx.blocking_recv() {
                let ok = out
                    .write_all(line.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush());
                if ok.is_err() {
                    // A closed stdout: events are dropped, the relay goes on.
                    while rx.blocking_recv().is_some() {}
                    return;
                }
            }
        });
        (Events { tx: Some(tx) }, Some(h))
    }

    /// Whether events are wanted.
    pub fn on(&self) -> bool {
        self.tx.is_some()
    }

    /// Sends one event: `kind` and its fields, each already JSON.
    pub async fn emit(&self, kind: &str, fields: &[(&str, String)]) {
        let Some(tx) = &self.tx else { return };
        let mut line = format!("{{\"event\":{}", json_str(kind));
        for (k, v) in fields {
            line.push(',');
            line.push_str(&json_str(k));
            line.push(':');
            line.push_str(v);
        }
        line.push('}');
        let _ = tx.send(line).await;
    }
}

/// A JSON string field.
pub fn s(v: &str) -> String {
    json_str(v)
}
