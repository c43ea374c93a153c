//! Malformed input is rejected with the line it is on.

use checker::parse_jsonl;

fn line_of(text: &str) -> usize {
    parse_jsonl(text).expect_err("must be rejected").line
}

#[test]
fn not_json_names_the_line() {
    let t = "{\"process\":0,\"type\":\"invoke\",\"f\":\"poll\",\"value\":[[\"poll\"]],\"time\":1}\n\nnot json\n";
    assert_eq!(line_of(t), 3);
}

#[test]
fn unknown_f_and_type_are_rejected() {
    assert_eq!(line_of("{\"process\":0,\"type\":\"invoke\",\"f\":\"sned\",\"value\":[],\"time\":1}"), 1);
    assert_eq!(line_of("{\"process\":0,\"type\":\"maybe\",\"f\":\"poll\",\"value\":[[\"poll\"]],\"time\":1}"), 1);
}

#[test]
fn time_going_backwards_is_rejected() {
    let t = "{\"process\":0,\"type\":\"invoke\",\"f\":\"poll\",\"value\":[[\"poll\"]],\"time\":5}\n{\"process\":0,\"type\":\"ok\",\"f\":\"poll\",\"value\":[[\"poll\",{}]],\"time\":4}\n";
    assert_eq!(line_of(t), 2);
}

#[test]
fn completion_without_invoke_and_double_invoke_are_rejected() {
    assert_eq!(line_of("{\"process\":0,\"type\":\"ok\",\"f\":\"poll\",\"value\":[[\"poll\",{}]],\"time\":1}"), 1);
    let t = "{\"process\":0,\"type\":\"invoke\",\"f\":\"poll\",\"value\":[[\"poll\"]],\"time\":1}\n{\"process\":0,\"type\":\"invoke\",\"f\":\"poll\",\"value\":[[\"poll\"]],\"time\":2}\n";
    assert_eq!(line_of(t), 2);
}

#[test]
fn ok_send_must_carry_offset_pair() {
    let t = "{\"process\":0,\"type\":\"invoke\",\"f\":\"send\",\"value\":[[\"send\",\"t-0\",1]],\"time\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"send\",\"value\":[[\"send\",\"t-0\",1]],\"time\":2}\n";
    assert_eq!(line_of(t), 2);
}

#[test]
fn completion_must_match_invocation() {
    let t = "{\"process\":0,\"type\":\"invoke\",\"f\":\"send\",\"value\":[[\"send\",\"t-0\",1]],\"time\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"send\",\"value\":[[\"send\",\"t-0\",[0,2]]],\"time\":2}\n";
    assert_eq!(line_of(t), 2);
}

#[test]
fn unfinished_operation_is_info_not_an_error() {
    let t = "{\"process\":0,\"type\":\"invoke\",\"f\":\"send\",\"value\":[[\"send\",\"t-0\",1]],\"time\":1}\n";
    let h = parse_jsonl(t).unwrap();
    assert_eq!(h.ops[0].outcome, checker::history::Outcome::Info);
}

#[test]
fn earliest_problem_wins_pairing_before_syntax() {
    // Line 2 completes an operation that was never invoked; line 3 is not JSON.
    let t = "{\"process\":0,\"type\":\"invoke\",\"f\":\"poll\",\"value\":[[\"poll\"]],\"time\":1}\n{\"process\":1,\"type\":\"ok\",\"f\":\"poll\",\"value\":[[\"poll\",{}]],\"time\":2}\nnot json\n";
    assert_eq!(line_of(t), 2);
}

#[test]
fn line_numbers_are_exact_in_large_files() {
    // Big enough to be parsed in many chunks in parallel.
    let text = checker::gen::log_history(&checker::gen::LogGen { events: 20_000, ..Default::default() });
    let h = parse_jsonl(&text).unwrap();
    assert_eq!(h.events.last().unwrap().line, text.lines().count());
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    for bad in [n / 3, n - 2] {
        let saved = lines[bad];
        lines[bad] = "{oops";
        assert_eq!(line_of(&lines.join("\n")), bad + 1);
        lines[bad] = saved;
    }
    // Keys are numbered in order of first appearance, whatever the chunking.
    let first_key = h.keys[0].clone();
    let pos = text.find("\"t-").unwrap();
    assert!(text[pos + 1..].starts_with(&first_key), "{first_key}");
}
