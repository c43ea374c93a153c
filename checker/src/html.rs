//! The self-contained HTML report: one page, no network fetches. The data is
//! embedded as JSON and drawn by a small inline script; when drawing
//! succeeds the script sets `<div id="render-status">` to `rendered`, and to
//! `error: ...` if any script error occurs (tests read it with --dump-dom).
//!
//! Drawn: the verdict and anomalies; per key with anomalies, a grid of
//! offsets by reading process with conflicts coloured; a timeline of
//! client operations per process (consumer-group commits and assignments
//! too, labelled with their values) with nemesis intervals shaded; for a
//! nonlinearizable key, the longest linearization found, Porcupine-style.
//! The x axis of drawings is the event's position in the history.
//!
//! Nemesis intervals: an event whose value is an object with "phase":
//! "start" opens an interval named by its `f`, and "phase": "stop" with the
//! same `f` closes it; an `f` ending in "-start" / "-stop" (e.g.
//! "partition-start") does the same for the name before the suffix. Any other
//! nemesis event is drawn as an instant. An interval never stopped lasts to
//! the end of the history.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::history::{History, Micro, Outcome, Payload, F};
use crate::report::Report;

/// Most operations drawn in the timeline (around the first witness).
const TIMELINE_MAX_OPS: usize = 2000;
/// Columns drawn either side of an anomaly's offset in a key's grid.
const GRID_CONTEXT: usize = 8;
/// Most columns in one key's grid.
const GRID_MAX_COLUMNS: usize = 240;
/// Most grids drawn.
const GRID_MAX_KEYS: usize = 12;
/// Most operations drawn in a linearization (the end of the prefix and around).
const LIN_MAX_OPS: usize = 80;

fn detail_offsets(d: &Value) -> Vec<i64> {
    let mut out = Vec::new();
    for f in ["offset", "max_read_offset", "previous_end_offset", "next_start_offset"] {
        if let Some(o) = d.get(f).and_then(Value::as_i64) {
            out.push(o);
        }
    }
    if let Some(a) = d.get("offsets").and_then(Value::as_array) {
        out.extend(a.iter().filter_map(Value::as_i64));
    }
    out
}

/// Per key with anomalies: offsets by reading process.
fn grids(h: &History, report: &Report) -> Vec<Value> {
    // key name → anomaly offsets
    let mut wanted: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for e in report.anomalies.values() {
        for ex in &e.examples {
            if let Some(k) = &ex.key {
                let offs = detail_offsets(&ex.detail);
                if !offs.is_empty() {
                    wanted.entry(k.clone()).or_default().extend(offs);
                }
            }
        }
    }
    let mut out = Vec::new();
    for (name, anomaly_offsets) in wanted.into_iter().take(GRID_MAX_KEYS) {
        let Some(kid) = h.keys.iter().position(|k| *k == name) else { continue };
        let kid = kid as u32;
        // row label → offset → values seen there
        let mut rows: BTreeMap<(u8, u32), BTreeMap<i64, BTreeSet<i64>>> = BTreeMap::new();
        let mut all_offsets: BTreeSet<i64> = BTreeSet::new();
        for op in &h.ops {
            match op.f {
                F::Send | F::Txn if op.outcome != Outcome::Fail => {
                    for m in h.micros(op) {
                        if let Micro::Send { key, value, offset: Some(o) } = m {
                            if *key == kid {
                                rows.entry((0, 0)).or_default().entry(*o).or_default().insert(*value);
                                all_offsets.insert(*o);
                            }
                        }
                    }
                }
                _ => {}
            }
            if matches!(op.f, F::Poll | F::Txn) {
                if let Some(Payload::Micros(ms)) = h.completion_event(op).map(|e| &e.value) {
                    for m in ms {
                        if let Micro::Poll { reads } = m {
                            for (k, pairs) in reads {
                                if *k == kid {
                                    for (o, v) in pairs {
                                        rows.entry((1, op.process)).or_default().entry(*o).or_default().insert(*v);
                                        all_offsets.insert(*o);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let offsets: Vec<i64> = all_offsets.iter().copied().collect();
        let mut keep: BTreeSet<usize> = BTreeSet::new();
        for a in &anomaly_offsets {
            let p = offsets.partition_point(|o| o < a);
            let lo = p.saturating_sub(GRID_CONTEXT);
            let hi = (p + GRID_CONTEXT + 1).min(offsets.len());
            keep.extend(lo..hi);
        }
        let columns: Vec<i64> = keep.into_iter().take(GRID_MAX_COLUMNS).map(|i| offsets[i]).collect();
        // An offset conflicts when the values seen there disagree.
        let mut conflicts = Vec::new();
        for o in &columns {
            let mut vals: BTreeSet<i64> = BTreeSet::new();
            for r in rows.values() {
                if let Some(vs) = r.get(o) {
                    vals.extend(vs);
                }
            }
            if vals.len() > 1 {
                conflicts.push(*o);
            }
        }
        // Acknowledged values that no reader saw at their offset.
        let unread: Vec<i64> = columns
            .iter()
            .copied()
            .filter(|o| {
                let sent = rows.get(&(0, 0)).and_then(|r| r.get(o));
                let seen = rows.iter().filter(|(k, _)| k.0 == 1).any(|(_, r)| r.get(o).is_some_and(|vs| sent.is_some_and(|s| !vs.is_disjoint(s))));
                sent.is_some() && !seen
            })
            .collect();
        let rows_json: Vec<Value> = rows
            .iter()
            .map(|((kind, p), cells)| {
                let label = if *kind == 0 { "acknowledged sends".to_string() } else { format!("process {p} reads") };
                let cells: serde_json::Map<String, Value> = columns
                    .iter()
                    .filter_map(|o| cells.get(o).map(|vs| (o.to_string(), json!(vs.iter().collect::<Vec<_>>()))))
                    .collect();
                json!({"label": label, "cells": cells})
            })
            .collect();
        out.push(json!({
            "key": name,
            "columns": columns,
            "rows": rows_json,
            "conflicts": conflicts,
            "unread": unread,
            "marked": anomaly_offsets.iter().collect::<Vec<_>>(),
        }));
    }
    out
}

/// Nemesis intervals and instants, by event position.
fn nemesis(h: &History) -> (Vec<Value>, Vec<Value>) {
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    let mut intervals = Vec::new();
    let mut points = Vec::new();
    for &i in &h.nemesis {
        let e = &h.events[i as usize];
        let Payload::Nemesis { f, value } = &e.value else { continue };
        let phase = value.get("phase").and_then(Value::as_str);
        let (name, start) = match phase {
            Some("start") => (f.clone(), Some(true)),
            Some("stop") => (f.clone(), Some(false)),
            _ => match (f.strip_suffix("-start"), f.strip_suffix("-stop")) {
                (Some(n), _) => (n.to_string(), Some(true)),
                (_, Some(n)) => (n.to_string(), Some(false)),
                _ => (f.clone(), None),
            },
        };
        match start {
            Some(true) => {
                open.entry(name).or_insert(i as usize);
            }
            Some(false) => {
                if let Some(s) = open.remove(&name) {
                    intervals.push(json!({"name": name, "start": s, "end": i}));
                } else {
                    points.push(json!({"name": f, "at": i, "value": value}));
                }
            }
            None => points.push(json!({"name": f, "at": i, "value": value})),
        }
    }
    for (name, s) in open {
        intervals.push(json!({"name": name, "start": s, "end": h.events.len()}));
    }
    (intervals, points)
}

fn op_label(h: &History, i: usize) -> String {
    let op = &h.ops[i];
    let inv = h.event_json(h.invoke_event(op));
    let comp = h.completion_event(op).map(|e| h.event_json(e));
    let shown = comp.as_ref().map(|c| &c["value"]).unwrap_or(&inv["value"]);
    let key = inv.get("key").map(|k| format!(" {k}")).unwrap_or_default();
    format!("{}{key} {} ({})", op.f.as_str(), shown, op.outcome.as_str())
}

fn timeline(h: &History, report: &Report) -> Value {
    let mut marked: BTreeSet<usize> = BTreeSet::new();
    let mut center = None;
    for (name, e) in &report.anomalies {
        for ex in &e.examples {
            for o in &ex.ops {
                marked.insert(o.op);
            }
        }
        if center.is_none() && !report.allowed.contains(name) {
            center = e.examples.first().and_then(|ex| ex.ops.first()).map(|o| o.op);
        }
    }
    let n = h.ops.len();
    let center = center.or_else(|| marked.iter().next().copied()).unwrap_or(0);
    let lo = center.saturating_sub(TIMELINE_MAX_OPS / 2).min(n.saturating_sub(TIMELINE_MAX_OPS));
    let hi = (lo + TIMELINE_MAX_OPS).min(n);
    let end = h.events.len();
    let ops: Vec<Value> = (lo..hi)
        .map(|i| {
            let op = &h.ops[i];
            json!({
                "id": i,
                "p": op.process,
                "s": op.invoke,
                "e": op.completion.map(|c| c as usize).unwrap_or(end),
                "t": op.outcome.as_str(),
                "label": op_label(h, i),
                "marked": marked.contains(&i),
            })
        })
        .collect();
    let (intervals, points) = nemesis(h);
    json!({
        "ops": ops,
        "shown": [lo, hi],
        "total_ops": n,
        "end": end,
        "nemesis_intervals": intervals,
        "nemesis_points": points,
    })
}

fn linearizations(h: &History, report: &Report) -> Vec<Value> {
    let Some(entry) = report.anomalies.get("nonlinearizable") else { return Vec::new() };
    let mut out = Vec::new();
    for ex in &entry.examples {
        let d = &ex.detail;
        let prefix: Vec<usize> = d["linearized"].as_array().map(|a| a.iter().filter_map(|v| v.as_u64().map(|x| x as usize)).collect()).unwrap_or_default();
        let Some(stuck) = d["stuck"].as_u64().map(|x| x as usize) else { continue };
        let key_ops: Vec<usize> = d["ops"].as_array().map(|a| a.iter().filter_map(|v| v.as_u64().map(|x| x as usize)).collect()).unwrap_or_default();
        let order: BTreeMap<usize, usize> = prefix.iter().enumerate().map(|(k, &o)| (o, k + 1)).collect();
        // Window: the last operations of the prefix, the stuck one, and any
        // operation of the key overlapping them.
        let tail: BTreeSet<usize> = prefix.iter().rev().take(LIN_MAX_OPS / 2).copied().chain([stuck]).collect();
        let from = tail.iter().map(|&o| h.ops[o].invoke).min().unwrap_or(0);
        let to = h.ops[stuck].completion.unwrap_or(h.events.len() as u32);
        let end = h.events.len();
        let mut shown: Vec<usize> = key_ops
            .iter()
            .copied()
            .filter(|&o| {
                let op = &h.ops[o];
                tail.contains(&o) || (op.invoke <= to && op.completion.map(|c| c >= from).unwrap_or(true))
            })
            .collect();
        shown.truncate(LIN_MAX_OPS);
        if !shown.contains(&stuck) {
            shown.push(stuck);
        }
        let ops: Vec<Value> = shown
            .iter()
            .map(|&o| {
                let op = &h.ops[o];
                json!({
                    "id": o,
                    "p": op.process,
                    "s": op.invoke,
                    "e": op.completion.map(|c| c as usize).unwrap_or(end),
                    "t": op.outcome.as_str(),
                    "label": op_label(h, o),
                    "order": order.get(&o),
                    "stuck": o == stuck,
                })
            })
            .collect();
        out.push(json!({
            "key": ex.key,
            "text": ex.text,
            "prefix_len": prefix.len(),
            "value_after": d["value_after"],
            "ops": ops,
        }));
    }
    out
}

/// Renders the report as one HTML page with no network fetches.
pub fn render(h: &History, report: &Report) -> String {
    let data = json!({
        "report": report.to_json(),
        "grids": grids(h, report),
        "timeline": timeline(h, report),
        "linearizations": linearizations(h, report),
    });
    // Inside <script>, "</" could close the element early.
    let data = data.to_string().replace("</", "<\\/");
    let mut page = String::with_capacity(data.len() + PAGE_HEAD.len() + PAGE_SCRIPT.len() + 200);
    page.push_str(PAGE_HEAD);
    page.push_str("<script type=\"application/json\" id=\"data\">");
    page.push_str(&data);
    page.push_str("</script>\n<script>\n");
    page.push_str(PAGE_SCRIPT);
    page.push_str("</script>\n</body>\n</html>\n");
    page
}

const PAGE_HEAD: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dlog-check report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.verdict { font-size: 1.3em; font-weight: bold; padding: .3em .6em; display: inline-block; border-radius: 4px; }
.valid { background: #d4f4d4; } .invalid { background: #f8d0d0; } .unknown { background: #f4ecc4; }
table { border-collapse: collapse; margin: .4em 0; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
.allowed { color: #777; }
.grid td { font-family: monospace; font-size: 12px; text-align: center; min-width: 2.2em; }
.grid td.conflict { background: #f6a5a5; } .grid th.marked { background: #ffe08a; }
.grid td.unread { background: #ffc46b; }
.grid td.marked { outline: 2px solid #e0a800; }
.example { margin: .3em 0 .6em 1em; } .ops { font-family: monospace; font-size: 12px; color: #444; white-space: pre-wrap; }
.scroll { overflow-x: auto; max-width: 100%; border: 1px solid #eee; }
svg text { font: 11px sans-serif; }
#render-status { color: #999; font-size: 11px; margin-top: 2em; }
</style>
</head>
<body>
<h1>dlog-check report</h1>
<div id="summary"></div>
<div id="anomalies"></div>
<div id="grids"></div>
<div id="linearizations"></div>
<div id="timeline"></div>
<div id="render-status">rendering</div>
"#;

const PAGE_SCRIPT: &str = r#"
"use strict";
window.onerror = function (msg, src, line) {
  document.getElementById('render-status').textContent = 'error: ' + msg + ' at line ' + line;
};
const D = JSON.parse(document.getElementById('data').textContent);
const R = D.report;
const SVG = 'http://www.w3.org/2000/svg';
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in (attrs || {})) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const k in (attrs || {})) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function titled(node, text) { node.appendChild(svg('title', {}, text)); return node; }
const COLORS = { ok: '#7cc47c', fail: '#b8b8b8', info: '#f0b45a' };

function summary() {
  const s = document.getElementById('summary');
  const v = R.valid === true ? 'valid' : (R.valid === false ? 'invalid' : 'unknown');
  s.appendChild(el('span', { class: 'verdict ' + v }, v.toUpperCase()));
  s.appendChild(el('span', {}, '  model: ' + R.model));
  for (const r of R.unknown_reasons) s.appendChild(el('p', {}, 'Unknown because ' + r));
  const st = Object.keys(R.stats).map(k => k + '=' + JSON.stringify(R.stats[k])).join('  ');
  s.appendChild(el('p', { class: 'ops' }, st));
}

function anomalies() {
  const root = document.getElementById('anomalies');
  const names = Object.keys(R.anomalies);
  root.appendChild(el('h2', {}, 'Anomalies'));
  if (names.length === 0) { root.appendChild(el('p', {}, 'None found.')); return; }
  const t = el('table');
  t.appendChild(el('tr')).append(el('th', {}, 'anomaly'), el('th', {}, 'count'), el('th', {}, 'makes the history invalid'));
  for (const n of names) {
    const allowed = R.allowed.includes(n);
    const tr = el('tr', allowed ? { class: 'allowed' } : {});
    tr.append(el('td', {}, n), el('td', {}, String(R.anomalies[n].count)), el('td', {}, allowed ? 'no (allowed)' : 'yes'));
    t.appendChild(tr);
  }
  root.appendChild(t);
  for (const n of names) {
    const a = R.anomalies[n];
    root.appendChild(el('h3', {}, n + ': ' + a.count + ' found, ' + a.examples.length + ' smallest shown'));
    for (const ex of a.examples) {
      const d = el('div', { class: 'example' });
      d.appendChild(el('div', {}, ex.text));
      const lines = ex.ops.map(o => 'process ' + o.process + ' ' + o.f + ' (' + o.type + ', line ' + o.invoke_line +
        (o.completion_line && o.completion_line !== o.invoke_line ? '-' + o.completion_line : '') + '): ' + JSON.stringify(o.invoke.value) +
        (o.completion ? ' -> ' + JSON.stringify(o.completion.value) : ' (never completed)'));
      d.appendChild(el('div', { class: 'ops' }, lines.join('\n')));
      root.appendChild(d);
    }
  }
}

function grids() {
  const root = document.getElementById('grids');
  if (D.grids.length === 0) return;
  root.appendChild(el('h2', {}, 'Offsets by reading process'));
  root.appendChild(el('p', {}, 'Each column is an offset holding a value; red cells are offsets where the values seen disagree; orange cells are acknowledged values no reader saw there; yellow headers are offsets named by an anomaly.'));
  for (const g of D.grids) {
    root.appendChild(el('h3', {}, 'key ' + g.key));
    const wrap = el('div', { class: 'scroll' });
    const t = el('table', { class: 'grid' });
    const head = el('tr');
    head.appendChild(el('th', {}, 'offset'));
    for (const o of g.columns) head.appendChild(el('th', g.marked.includes(o) ? { class: 'marked' } : {}, String(o)));
    t.appendChild(head);
    for (const r of g.rows) {
      const tr = el('tr');
      tr.appendChild(el('th', {}, r.label));
      for (const o of g.columns) {
        const vs = r.cells[String(o)];
        const cls = [];
        if (vs && g.conflicts.includes(o)) cls.push('conflict');
        else if (vs && r.label === 'acknowledged sends' && g.unread.includes(o)) cls.push('unread');
        if (vs && g.marked.includes(o)) cls.push('marked');
        tr.appendChild(el('td', cls.length ? { class: cls.join(' ') } : {}, vs ? vs.join('/') : ''));
      }
      t.appendChild(tr);
    }
    wrap.appendChild(t);
    root.appendChild(wrap);
  }
}

// Lanes of operations per process over event positions.
function lanes(ops, opts) {
  const procs = Array.from(new Set(ops.map(o => o.p))).sort((a, b) => a - b);
  const lo = Math.min(...ops.map(o => o.s), ...(opts.extraStart || []));
  const hi = Math.max(...ops.map(o => o.e), ...(opts.extraEnd || [])) + 1;
  const width = Math.max(600, Math.min(4000, (hi - lo) * 6));
  const left = 90, laneH = 22, top = 20;
  const height = top + procs.length * laneH + 20;
  const x = pos => left + (pos - lo) / Math.max(1, hi - lo) * (width - left - 10);
  const s = svg('svg', { width: width, height: height, viewBox: '0 0 ' + width + ' ' + height });
  return { s, procs, x, laneH, top, lo, hi, width, height, left };
}

function timeline() {
  const T = D.timeline;
  const root = document.getElementById('timeline');
  root.appendChild(el('h2', {}, 'Timeline'));
  if (T.ops.length === 0) { root.appendChild(el('p', {}, 'No client operations.')); return; }
  root.appendChild(el('p', {}, 'Operations ' + T.shown[0] + ' to ' + T.shown[1] + ' of ' + T.total_ops +
    ' by process, over position in the history. Green ok, orange info, grey fail; outlined operations appear in a witness; shaded bands are nemesis intervals.'));
  const L = lanes(T.ops, {});
  const inView = (a, b) => b >= L.lo && a <= L.hi;
  for (const n of T.nemesis_intervals) {
    if (!inView(n.start, n.end)) continue;
    const a = L.x(Math.max(n.start, L.lo)), b = L.x(Math.min(n.end, L.hi));
    L.s.appendChild(titled(svg('rect', { x: a, y: 0, width: Math.max(2, b - a), height: L.height, fill: '#c9d8f5', opacity: 0.5 }), n.name + ' (events ' + n.start + '-' + n.end + ')'));
    L.s.appendChild(svg('text', { x: a + 2, y: 12, fill: '#3a5a9a' }, n.name));
  }
  for (const n of T.nemesis_points) {
    if (!inView(n.at, n.at)) continue;
    const a = L.x(n.at);
    L.s.appendChild(titled(svg('line', { x1: a, x2: a, y1: 0, y2: L.height, stroke: '#6a5acd', 'stroke-dasharray': '3,2' }), n.name + ' ' + JSON.stringify(n.value)));
  }
  L.procs.forEach((p, i) => L.s.appendChild(svg('text', { x: 4, y: L.top + i * L.laneH + 14 }, 'process ' + p)));
  for (const o of T.ops) {
    const i = L.procs.indexOf(o.p);
    const a = L.x(o.s), b = L.x(o.e);
    const r = svg('rect', { x: a, y: L.top + i * L.laneH + 3, width: Math.max(2, b - a), height: L.laneH - 6,
      fill: COLORS[o.t] || '#ccc', stroke: o.marked ? '#d00' : 'none', 'stroke-width': o.marked ? 2 : 0 });
    L.s.appendChild(titled(r, 'op ' + o.id + ': ' + o.label));
  }
  const wrap = el('div', { class: 'scroll' });
  wrap.appendChild(L.s);
  root.appendChild(wrap);
}

function linearizations() {
  const root = document.getElementById('linearizations');
  if (D.linearizations.length === 0) return;
  root.appendChild(el('h2', {}, 'Non-linearizable keys'));
  for (const lz of D.linearizations) {
    root.appendChild(el('h3', {}, 'key ' + (lz.key === '' ? '(shared)' : lz.key)));
    root.appendChild(el('p', {}, lz.text));
    root.appendChild(el('p', {}, 'Numbers give the order of the longest linearization found (' + lz.prefix_len +
      ' operations, value after it: ' + lz.value_after + '); the red operation could not be placed after it.'));
    const L = lanes(lz.ops, {});
    L.procs.forEach((p, i) => L.s.appendChild(svg('text', { x: 4, y: L.top + i * L.laneH + 14 }, 'process ' + p)));
    const points = [];
    for (const o of lz.ops) {
      const i = L.procs.indexOf(o.p);
      const a = L.x(o.s), b = L.x(o.e);
      const y = L.top + i * L.laneH + 3;
      const fill = o.stuck ? '#f08080' : (o.order ? '#9fd39f' : '#e4e4e4');
      L.s.appendChild(titled(svg('rect', { x: a, y: y, width: Math.max(2, b - a), height: L.laneH - 6, fill: fill,
        stroke: o.stuck ? '#b00' : '#888', 'stroke-width': o.stuck ? 2 : 0.5 }), 'op ' + o.id + ': ' + o.label));
      if (o.order) {
        points.push([o.order, (a + b) / 2, y + (L.laneH - 6) / 2]);
        L.s.appendChild(svg('text', { x: a + 2, y: y + 12 }, '#' + o.order));
      }
    }
    points.sort((p, q) => p[0] - q[0]);
    if (points.length > 1) {
      L.s.appendChild(svg('polyline', { points: points.map(p => p[1] + ',' + p[2]).join(' '), fill: 'none', stroke: '#2a6', 'stroke-width': 1, opacity: 0.7 }));
    }
    const wrap = el('div', { class: 'scroll' });
    wrap.appendChild(L.s);
    root.appendChild(wrap);
  }
}

summary();
anomalies();
grids();
linearizations();
timeline();
const status = document.getElementById('render-status');
if (!status.textContent.startsWith('error')) status.textContent = 'rendered';
"#;
