//! The self-contained HTML report.

use crate::history::History;
use crate::report::Report;

/// Renders the report as one HTML page with no network fetches.
pub fn render(_h: &History, report: &Report) -> String {
    let json = report.to_json().to_string().replace("</", "<\\/");
    format!("<!doctype html><html><head><meta charset=\"utf-8\"><title>dlog-check</title></head><body><pre id=\"r\"></pre><script>const R={json};document.getElementById('r').textContent=JSON.stringify(R,null,2);</script></body></html>")
}
