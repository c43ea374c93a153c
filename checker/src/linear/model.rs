//! The register/kv model a key is checked against: values are interned to
//! small integers so a state is one `u32`, cheap to hash and compare.

use serde_json::Value;

use crate::fxhash::FxHashMap;
use crate::history::RegValue;

/// A state: an interned value (see [`Interner`]).
pub(crate) type State = u32;

/// What one operation does, in interned values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// An ok read that returned this value.
    Read(State),
    Write(State),
    /// An ok cas: the value was EXPECTED and became NEW.
    CasOk(State, State),
    /// A failed cas: the value was not EXPECTED.
    CasFail(State),
    /// Append this interned string to the key's (string) value.
    Append(State),
}

/// Interns a key's values. In register mode id 0 is null (the initial
/// value); in string mode (any append on the key) values are strings, null is
/// "" and id 0 is "".
pub(crate) struct Interner {
    pub string_mode: bool,
    ids: FxHashMap<String, State>,
    pub names: Vec<String>,
}

impl Interner {
    pub fn new(string_mode: bool) -> Interner {
        let mut i = Interner {
            string_mode,
            ids: FxHashMap::default(),
            names: Vec::new(),
        };
        let initial = if string_mode { String::new() } else { "null".to_string() };
        i.intern_text(initial);
        i
    }

    fn intern_text(&mut self, text: String) -> State {
        if let Some(&id) = self.ids.get(&text) {
            return id;
        }
        let id = self.names.len() as State;
        self.names.push(text.clone());
        self.ids.insert(text, id);
        id
    }

    /// Interns a JSON value as this key's value domain sees it.
    pub fn value(&mut self, v: Option<&Value>) -> State {
        let text = match (self.string_mode, v) {
            (_, None) | (_, Some(Value::Null)) => return 0,
            (true, Some(Value::String(s))) => s.clone(),
            (_, Some(other)) => other.to_string(),
        };
        self.intern_text(text)
    }

    /// The state after appending the string `s` to state `base` (string mode).
    pub fn append(&mut self, base: State, s: State) -> State {
        let text = format!("{}{}", self.names[base as usize], self.names[s as usize]);
        self.intern_text(text)
    }

    /// A state as people read it (JSON text in register mode, quoted in string mode).
    pub fn show(&self, s: State) -> String {
        if self.string_mode {
            format!("{:?}", self.names[s as usize])
        } else {
            self.names[s as usize].clone()
        }
    }

    /// The step an operation takes, from its invocation and completion payloads.
    pub fn step(&mut self, invoke: &RegValue, completion: Option<&RegValue>, ok: bool) -> Option<Step> {
        Some(match invoke {
            RegValue::Read(_) => match completion {
                Some(RegValue::Read(v)) => Step::Read(self.value(v.as_ref())),
                _ => return None,
            },
            RegValue::Write(v) => Step::Write(self.value(Some(v))),
            RegValue::Cas(e, n) => {
                let e = self.value(Some(e));
                if ok {
                    Step::CasOk(e, self.value(Some(n)))
                } else {
                    Step::CasFail(e)
                }
            }
            RegValue::Append(s) => {
                let id = match s {
                    Some(s) => self.intern_text(s.clone()),
                    None => 0,
                };
                Step::Append(id)
            }
        })
    }

    /// Applies a step; `None` when it cannot happen in this state.
    #[inline]
    pub fn apply(&mut self, s: State, step: Step) -> Option<State> {
        match step {
            Step::Read(v) => (s == v).then_some(s),
            Step::Write(v) => Some(v),
            Step::CasOk(e, n) => (s == e).then_some(n),
            Step::CasFail(e) => (s != e).then_some(s),
            Step::Append(x) => Some(if x == 0 { s } else { self.append(s, x) }),
        }
    }
}
