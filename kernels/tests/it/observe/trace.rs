//! `kernels::observe::trace`: the `traceparent` examples of the W3C Trace Context recommendation
//! (valid and invalid), child spans, and JSON-lines logs that carry the trace id.

use std::io::Write;
use std::sync::{Arc, Mutex};

use kernels::observe::trace::{self, TraceContext};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[test]
fn traceparent_values_parse_as_the_spec_says() {
    fn check(header: &str, want: Option<(&str, &str, bool)>) {
        let got = TraceContext::parse(header).map(|c| (c.trace_id_hex(), c.span_id_hex(), c.sampled));
        let want = want.map(|(t, s, f)| (t.to_owned(), s.to_owned(), f));
        assert_eq!(got, want, "{header:?}");
    }
    let ok = |sampled| Some((TRACE, PARENT, sampled));
    check(&format!("00-{TRACE}-{PARENT}-01"), ok(true));
    check(&format!("00-{TRACE}-{PARENT}-00"), ok(false));
    check(&format!("00-{TRACE}-{PARENT}-09"), ok(true)); // unknown flags are ignored
    check(&format!(" 00-{TRACE}-{PARENT}-01\t"), ok(true)); // HTTP's optional white space
    // Future versions: the first four fields as version 00, the rest ignored after a `-`.
    check(&format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"), ok(true));
    check(&format!("01-{TRACE}-{PARENT}-00"), ok(false));
    check(&format!("cc-{TRACE}-{PARENT}-01what"), None);
    check(&format!("ff-{TRACE}-{PARENT}-01"), None); // version ff is invalid
    check(&format!("00-{TRACE}-{PARENT}-01-extra"), None); // version 00 has exactly 55 characters
    check(&format!("00-{}-{PARENT}-01", TRACE.to_uppercase()), None);
    check(&format!("00-{TRACE}-{}-01", PARENT.to_uppercase()), None);
    check(&format!("0A-{TRACE}-{PARENT}-01"), None);
    check(&format!("00-{}-{PARENT}-01", "0".repeat(32)), None); // all-zero trace id
    check(&format!("00-{TRACE}-{}-01", "0".repeat(16)), None); // all-zero parent id
    check(&format!("00-{TRACE}-{PARENT}-0g"), None);
    check(&format!("00-{TRACE}-{PARENT}-1"), None);
    check(&format!("00_{TRACE}-{PARENT}-01"), None);
    check(&format!("00-{TRACE}{PARENT}-01-"), None);
    check(&format!("00-{}-{PARENT}-01", &TRACE[1..]), None);
    check(&format!("00-{TRACE}-{PARENT}x-01"), None);
    check("", None);
    check("00", None);
}

#[test]
fn headers_round_trip_and_children_keep_the_trace() {
    let header = format!("00-{TRACE}-{PARENT}-01");
    let ctx = TraceContext::parse(&header).unwrap();
    assert_eq!(ctx.to_header(), header);
    let child = ctx.child();
    assert_eq!((child.trace_id, child.sampled), (ctx.trace_id, ctx.sampled));
    assert_ne!(child.span_id, ctx.span_id);
    assert_eq!(TraceContext::parse(&child.to_header()), Some(child));
    let (a, b) = (TraceContext::new_root(), TraceContext::new_root());
    assert_ne!(a.trace_id, b.trace_id);
    assert_ne!(a.trace_id, [0; 16]);
    assert_eq!(TraceContext::parse(&a.to_header()), Some(a));
    let (answer, parent) = TraceContext::for_request(Some(&header));
    assert_eq!((answer.trace_id, parent), (ctx.trace_id, Some(ctx.span_id)));
    let (fresh, none) = TraceContext::for_request(Some("garbage"));
    assert_ne!(fresh.trace_id, ctx.trace_id);
    assert_eq!(none, None);
}

/// A writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn json_log_lines_parse_and_carry_the_trace_id() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = trace::json_subscriber(tracing::Level::INFO, move || writer.clone());
    let ctx = TraceContext::parse(&format!("00-{TRACE}-{PARENT}-01")).unwrap().child();
    tracing::subscriber::with_default(subscriber, || {
        let span =
            trace::request_span("/v1/chat/completions", "", &ctx, Some([0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]));
        span.record("model", "smol");
        let _entered = span.enter();
        tracing::info!(tokens = 12, "answered \"quoted\"\nand a newline");
        tracing::debug!("below the level: dropped");
    });
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["message"], "answered \"quoted\"\nand a newline");
    assert_eq!(line["fields"]["tokens"], 12);
    assert_eq!(line["span"]["name"], "request");
    assert_eq!(line["span"]["trace_id"], TRACE);
    assert_eq!(line["span"]["span_id"], ctx.span_id_hex());
    assert_eq!(line["span"]["parent_span_id"], PARENT);
    assert_eq!(line["span"]["model"], "smol");
    assert_eq!(line["spans"][0]["route"], "/v1/chat/completions");
}

#[test]
fn installing_the_logs_twice_changes_nothing() {
    trace::init_json_logs(std::io::sink);
    assert!(!trace::init_json_logs(std::io::sink));
}
