//! Deterministic generators of valid histories, for benchmarks and tests.
//! They simulate a correct system, so their histories must check as valid.

use std::fmt::Write as _;

/// A small deterministic PRNG (SplitMix64): the generators must give the same
/// history for the same seed on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability p.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 + f64::EPSILON < p
    }
}

/// Shape of a generated log history.
#[derive(Debug, Clone)]
pub struct LogGen {
    /// Approximate number of events (lines) to produce.
    pub events: usize,
    pub keys: usize,
    /// Half produce, half consume (at least one of each).
    pub processes: u32,
    /// Records each poll returns per key, at most.
    pub poll_batch: usize,
    /// Every this many records an offset is left empty, as a transaction marker would.
    pub marker_every: u64,
    /// Values per send operation, each to a random key (more than one makes
    /// concurrent sends form allowed G0 cycles).
    pub sends_per_op: usize,
    pub seed: u64,
}

impl Default for LogGen {
    fn default() -> Self {
        LogGen {
            events: 10_000,
            keys: 10,
            processes: 10,
            poll_batch: 4,
            marker_every: 50,
            sends_per_op: 1,
            seed: 1,
        }
    }
}

enum InFlight {
    /// (key, value, offset once appended): a send's records land one at a
    /// time, each at a random step, so concurrent multi-key sends interleave.
    Send(Vec<(usize, u64, Option<u64>)>),
    Poll,
}

/// Generates a valid log history: producers send single values, consumers
/// are assigned fixed keys and poll them in order, and a final drain reads
/// every key to its end.
pub fn log_history(cfg: &LogGen) -> String {
    let mut rng = Rng::new(cfg.seed);
    let producers = (cfg.processes / 2).max(1);
    let consumers = (cfg.processes - producers).max(1);
    let n_procs = producers + consumers;
    let keys = cfg.keys.max(1);
    // per key: committed records (offset, value) and the next free offset
    let mut log: Vec<Vec<(u64, u64)>> = vec![Vec::new(); keys];
    let mut next_offset = vec![0u64; keys];
    // per consumer, per assigned key: index into log of the next record to read
    let assigned: Vec<Vec<usize>> = (0..consumers as usize)
        .map(|c| (0..keys).filter(|k| k % consumers as usize == c).collect())
        .collect();
    let mut position: Vec<Vec<usize>> = assigned.iter().map(|ks| vec![0; ks.len()]).collect();
    let mut in_flight: Vec<Option<InFlight>> = (0..n_procs).map(|_| None).collect();
    let mut out = String::with_capacity(cfg.events * 90);
    let mut time_ns = 0u64;
    let mut events = 0usize;
    let mut next_value = 0u64;

    let line = |out: &mut String, time_ns: &mut u64, events: &mut usize, p: u32, ty: &str, f: &str, value: &str| {
        *time_ns += 1 + (*time_ns % 7);
        *events += 1;
        let _ = writeln!(out, "{{\"process\":{p},\"type\":\"{ty}\",\"f\":\"{f}\",\"value\":{value},\"time\":{time_ns}}}");
    };
    let keys_json = |ks: &[usize]| {
        let names: Vec<String> = ks.iter().map(|k| format!("\"t-{k}\"")).collect();
        format!("[{}]", names.join(","))
    };
    for c in 0..consumers {
        let v = keys_json(&assigned[c as usize]);
        let p = producers + c;
        line(&mut out, &mut time_ns, &mut events, p, "invoke", "assign", &v);
        line(&mut out, &mut time_ns, &mut events, p, "ok", "assign", &v);
    }
    let poll_value = |log: &Vec<Vec<(u64, u64)>>, ks: &[usize], pos: &mut [usize], batch: usize| {
        let mut s = String::from("[[\"poll\",{");
        let mut first = true;
        for (j, &k) in ks.iter().enumerate() {
            let end = pos[j].saturating_add(batch).min(log[k].len());
            if end == pos[j] {
                continue;
            }
            if !first {
                s.push(',');
            }
            first = false;
            let _ = write!(s, "\"t-{k}\":[");
            for (n, (o, v)) in log[k][pos[j]..end].iter().enumerate() {
                if n > 0 {
                    s.push(',');
                }
                let _ = write!(s, "[{o},{v}]");
            }
            s.push(']');
            pos[j] = end;
        }
        s.push_str("}]]");
        s
    };
    // Stop invoking early enough that completions and the drain fit the budget.
    let drain_events = 2 * n_procs as usize + 2 * consumers as usize * 4;
    let stop_invoking = cfg.events.saturating_sub(drain_events);
    loop {
        let p = rng.below(n_procs as u64) as u32;
        let pi = p as usize;
        if let Some(op) = in_flight[pi].take() {
            match op {
                InFlight::Send(mut sends) => {
                    if let Some(pending) = sends.iter_mut().find(|s| s.2.is_none()) {
                        let key = pending.0;
                        let offset = next_offset[key];
                        next_offset[key] += if cfg.marker_every > 0 && (offset + 1).is_multiple_of(cfg.marker_every) { 2 } else { 1 };
                        log[key].push((offset, pending.1));
                        pending.2 = Some(offset);
                        in_flight[pi] = Some(InFlight::Send(sends));
                        continue;
                    }
                    let parts: Vec<String> = sends
                        .iter()
                        .map(|(key, value, offset)| format!("[\"send\",\"t-{key}\",[{},{value}]]", offset.unwrap_or(0)))
                        .collect();
                    let v = format!("[{}]", parts.join(","));
                    line(&mut out, &mut time_ns, &mut events, p, "ok", "send", &v);
                }
                InFlight::Poll => {
                    let c = pi - producers as usize;
                    let v = poll_value(&log, &assigned[c], &mut position[c], cfg.poll_batch);
                    line(&mut out, &mut time_ns, &mut events, p, "ok", "poll", &v);
                }
            }
            continue;
        }
        if events >= stop_invoking {
            if in_flight.iter().all(Option::is_none) {
                break;
            }
            continue;
        }
        if p < producers {
            let mut sends = Vec::with_capacity(cfg.sends_per_op.max(1));
            let mut parts = Vec::with_capacity(cfg.sends_per_op.max(1));
            for _ in 0..cfg.sends_per_op.max(1) {
                let key = rng.below(keys as u64) as usize;
                let value = next_value;
                next_value += 1;
                parts.push(format!("[\"send\",\"t-{key}\",{value}]"));
                sends.push((key, value, None));
            }
            let v = format!("[{}]", parts.join(","));
            line(&mut out, &mut time_ns, &mut events, p, "invoke", "send", &v);
            in_flight[pi] = Some(InFlight::Send(sends));
        } else {
            line(&mut out, &mut time_ns, &mut events, p, "invoke", "poll", "[[\"poll\"]]");
            in_flight[pi] = Some(InFlight::Poll);
        }
    }
    // The final drain: each consumer reads the rest of its keys in one poll.
    for c in 0..consumers as usize {
        let p = producers + c as u32;
        let v = poll_value(&log, &assigned[c], &mut position[c], usize::MAX);
        line(&mut out, &mut time_ns, &mut events, p, "invoke", "poll", "[[\"poll\"]]");
        line(&mut out, &mut time_ns, &mut events, p, "ok", "poll", &v);
    }
    out
}

/// Shape of a generated register history.
#[derive(Debug, Clone)]
pub struct RegisterGen {
    pub ops: usize,
    pub processes: u32,
    /// Fraction of operations whose outcome is reported as info.
    pub info_fraction: f64,
    pub keys: usize,
    /// Values written are drawn from 0..values (small, so reads are ambiguous).
    pub values: u64,
    pub seed: u64,
}

impl Default for RegisterGen {
    fn default() -> Self {
        RegisterGen {
            ops: 1000,
            processes: 10,
            info_fraction: 0.1,
            keys: 1,
            values: 5,
            seed: 1,
        }
    }
}

#[derive(Clone, Copy)]
enum RegOp {
    Read,
    Write(u64),
    Cas(u64, u64),
}

/// Generates a linearizable register history: each operation takes effect at
/// its completion; an info operation takes effect or not at random.
pub fn register_history(cfg: &RegisterGen) -> String {
    let mut rng = Rng::new(cfg.seed);
    let keys = cfg.keys.max(1);
    let mut state: Vec<Option<u64>> = vec![None; keys];
    let mut in_flight: Vec<Option<(RegOp, usize, bool)>> = vec![None; cfg.processes.max(1) as usize];
    let mut out = String::with_capacity(cfg.ops * 160);
    let mut invoked = 0usize;
    let mut time_ns = 0u64;
    let show = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "null".into());
    loop {
        let p = rng.below(in_flight.len() as u64) as usize;
        time_ns += 1;
        if let Some((op, key, info)) = in_flight[p].take() {
            let applies = !info || rng.chance(0.5);
            let (f, ty, value) = match op {
                RegOp::Read => ("read", if info { "info" } else { "ok" }, if info { "null".into() } else { show(state[key]) }),
                RegOp::Write(v) => {
                    if applies {
                        state[key] = Some(v);
                    }
                    ("write", if info { "info" } else { "ok" }, v.to_string())
                }
                RegOp::Cas(e, n) => {
                    let swapped = state[key] == Some(e);
                    if swapped && applies {
                        state[key] = Some(n);
                    }
                    let ty = if info { "info" } else if swapped { "ok" } else { "fail" };
                    ("cas", ty, format!("[{e},{n}]"))
                }
            };
            let _ = writeln!(out, "{{\"process\":{p},\"type\":\"{ty}\",\"f\":\"{f}\",\"key\":\"r{key}\",\"value\":{value},\"time\":{time_ns}}}");
            continue;
        }
        if invoked >= cfg.ops {
            if in_flight.iter().all(Option::is_none) {
                break;
            }
            continue;
        }
        invoked += 1;
        let key = rng.below(keys as u64) as usize;
        let op = match rng.below(10) {
            0..=3 => RegOp::Read,
            4..=7 => RegOp::Write(rng.below(cfg.values)),
            _ => RegOp::Cas(rng.below(cfg.values), rng.below(cfg.values)),
        };
        let info = rng.chance(cfg.info_fraction);
        let (f, value) = match op {
            RegOp::Read => ("read", "null".to_string()),
            RegOp::Write(v) => ("write", v.to_string()),
            RegOp::Cas(e, n) => ("cas", format!("[{e},{n}]")),
        };
        let _ = writeln!(out, "{{\"process\":{p},\"type\":\"invoke\",\"f\":\"{f}\",\"key\":\"r{key}\",\"value\":{value},\"time\":{time_ns}}}");
        in_flight[p] = Some((op, key, info));
    }
    out
}
