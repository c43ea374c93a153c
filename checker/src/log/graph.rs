//! A compact directed graph with typed edges, and Tarjan's strongly connected
//! components restricted to a node set and an edge-type mask.

/// Edge types, as bits so a mask can select several.
pub(crate) const WW: u8 = 1;
pub(crate) const WR: u8 = 2;
pub(crate) const PROC: u8 = 4;
pub(crate) const RT: u8 = 8;

/// Adjacency in compressed sparse rows.
pub(crate) struct Graph {
    start: Vec<u32>,
    to: Vec<u32>,
    kind: Vec<u8>,
}

impl Graph {
    /// Builds from an edge list `(from, to, kind)` with a counting sort by
    /// source (linear time; each node's edges keep their list order).
    pub fn from_edges(n_nodes: usize, edges: Vec<(u32, u32, u8)>) -> Graph {
        let mut start = vec![0u32; n_nodes + 1];
        for &(f, _, _) in &edges {
            start[f as usize + 1] += 1;
        }
        for i in 0..n_nodes {
            start[i + 1] += start[i];
        }
        let mut fill: Vec<u32> = start[..n_nodes].to_vec();
        let mut to = vec![0u32; edges.len()];
        let mut kind = vec![0u8; edges.len()];
        for (f, t, k) in edges {
            let slot = &mut fill[f as usize];
            to[*slot as usize] = t;
            kind[*slot as usize] = k;
            *slot += 1;
        }
        Graph { start, to, kind }
    }

    pub fn n_nodes(&self) -> usize {
        self.start.len() - 1
    }

    pub fn n_edges(&self) -> usize {
        self.to.len()
    }

    #[inline]
    pub fn out(&self, v: u32) -> impl Iterator<Item = (u32, u8)> + '_ {
        let (a, b) = (self.start[v as usize] as usize, self.start[v as usize + 1] as usize);
        self.to[a..b].iter().copied().zip(self.kind[a..b].iter().copied())
    }
}

const UNSEEN: u32 = u32::MAX;

/// States the cycle searches of one component may visit before settling for
/// the shortest cycle found so far.
const MAX_VISITS: usize = 1 << 16;

/// Reusable scratch space for repeated SCC searches over subsets of one graph.
pub(crate) struct Tarjan {
    index: Vec<u32>,
    low: Vec<u32>,
    on_stack: Vec<bool>,
    touched: Vec<u32>,
}

impl Tarjan {
    pub fn new(n_nodes: usize) -> Tarjan {
        Tarjan {
            index: vec![UNSEEN; n_nodes],
            low: vec![0; n_nodes],
            on_stack: vec![false; n_nodes],
            touched: Vec::new(),
        }
    }

    /// Strongly connected components of more than one node among `nodes`,
    /// following only edges whose kind is in `mask` and whose target satisfies
    /// `keep`. Each component is sorted; components come in a deterministic order.
    pub fn sccs(&mut self, g: &Graph, nodes: &[u32], mask: u8, keep: &dyn Fn(u32) -> bool) -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        let mut counter = 0u32;
        let mut stack: Vec<u32> = Vec::new();
        // (node, position in its out-edges)
        let mut call: Vec<(u32, u32)> = Vec::new();
        for &root in nodes {
            if self.index[root as usize] != UNSEEN || !keep(root) {
                continue;
            }
            call.push((root, g.start[root as usize]));
            self.visit(root, &mut counter, &mut stack);
            while let Some(&mut (v, ref mut pos)) = call.last_mut() {
                let end = g.start[v as usize + 1];
                let mut descended = false;
                while *pos < end {
                    let e = *pos as usize;
                    *pos += 1;
                    if g.kind[e] & mask == 0 {
                        continue;
                    }
                    let w = g.to[e];
                    if !keep(w) {
                        continue;
                    }
                    if self.index[w as usize] == UNSEEN {
                        self.visit(w, &mut counter, &mut stack);
                        call.push((w, g.start[w as usize]));
                        descended = true;
                        break;
                    } else if self.on_stack[w as usize] {
                        let wi = self.index[w as usize];
                        let lv = &mut self.low[v as usize];
                        *lv = (*lv).min(wi);
                    }
                }
                if descended {
                    continue;
                }
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    let lw = self.low[v as usize];
                    let lp = &mut self.low[parent as usize];
                    *lp = (*lp).min(lw);
                }
                if self.low[v as usize] == self.index[v as usize] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        self.on_stack[w as usize] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if comp.len() > 1 {
                        comp.sort_unstable();
                        out.push(comp);
                    }
                }
            }
        }
        self.reset();
        out.sort();
        out
    }

    fn visit(&mut self, v: u32, counter: &mut u32, stack: &mut Vec<u32>) {
        self.index[v as usize] = *counter;
        self.low[v as usize] = *counter;
        *counter += 1;
        stack.push(v);
        self.on_stack[v as usize] = true;
        self.touched.push(v);
    }

    fn reset(&mut self) {
        for &v in &self.touched {
            self.index[v as usize] = UNSEEN;
            self.on_stack[v as usize] = false;
        }
        self.touched.clear();
    }
}

/// The shortest cycle inside `members` (`inside` tells membership) that uses only edges in `mask`
/// and includes at least one edge of each type in `required`. Returns the nodes
/// of the cycle in order, each with the kind of the edge to the next one.
/// Tries at most `attempts` starting edges, and stops trying new ones once
/// the searches have visited [`MAX_VISITS`] states, so a huge component stays cheap.
pub(crate) fn find_cycle(
    g: &Graph,
    members: &[u32],
    inside: &dyn Fn(u32) -> bool,
    mask: u8,
    required: u8,
    attempts: usize,
) -> Option<Vec<(u32, u8)>> {
    use std::collections::VecDeque;
    // The first required type (or any allowed edge) picks the starting edges.
    let first = if required == 0 { mask } else { required & required.wrapping_neg() };
    let mut tried = 0;
    let mut visits = 0usize;
    let mut best: Option<Vec<(u32, u8)>> = None;
    for &a in members {
        for (b, k) in g.out(a) {
            if k & first == 0 || k & mask == 0 || !inside(b) {
                continue;
            }
            if tried >= attempts || (visits >= MAX_VISITS && best.is_some()) {
                return best;
            }
            tried += 1;
            // BFS over (node, required types seen) from b back to a.
            let start_mask = k & required;
            let mut prev: crate::fxhash::FxHashMap<(u32, u8), (u32, u8, u8)> = Default::default();
            let mut queue = VecDeque::new();
            queue.push_back((b, start_mask));
            prev.insert((b, start_mask), (a, start_mask, k));
            let mut goal = None;
            while let Some((v, m)) = queue.pop_front() {
                visits += 1;
                if v == a && m & required == required {
                    goal = Some((v, m));
                    break;
                }
                if v == a {
                    continue;
                }
                for (w, kw) in g.out(v) {
                    if kw & mask == 0 || !inside(w) {
                        continue;
                    }
                    let nm = m | (kw & required);
                    if let std::collections::hash_map::Entry::Vacant(e) = prev.entry((w, nm)) {
                        e.insert((v, m, kw));
                        queue.push_back((w, nm));
                    }
                }
            }
            let Some(mut cur) = goal else { continue };
            // Walk back from a to b, then prepend the starting edge a → b.
            let mut rev: Vec<(u32, u8)> = Vec::new();
            while cur != (b, start_mask) {
                let (pv, pm, kind) = prev[&cur];
                rev.push((pv, kind));
                cur = (pv, pm);
            }
            let mut cycle = vec![(a, k)];
            cycle.extend(rev.into_iter().rev());
            if best.as_ref().is_none_or(|c| cycle.len() < c.len()) {
                best = Some(cycle);
            }
            if best.as_ref().is_some_and(|c| c.len() <= 2) {
                return best; // no cycle is shorter
            }
        }
    }
    best
}
