//! The learner's progress report: the text with its plot per week, and the JSON, from recorded runs.

use autograder::history::{Entry, PLOT_RUNS, render, to_json};

/// Runs of `(week, score, max_score)`, one second apart; each run's tasks are `t1` = its score.
fn entries(runs: &[(&str, f64, f64)]) -> Vec<Entry> {
    runs.iter()
        .enumerate()
        .map(|(i, &(week, score, max_score))| Entry {
            timestamp: 1_800_000_000 + i as u64,
            week: week.into(),
            score,
            max_score,
            tasks: [("t1".to_string(), score)].into(),
        })
        .collect()
}

fn check(runs: &[(&str, f64, f64)], expected: &str) {
    let text = render(&entries(runs));
    assert_eq!(text, expected, "\n{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line:?}");
    }
}

#[test]
fn no_runs_say_how_to_start() {
    check(&[], "No graded runs yet: try `cargo xtask grade week3`.\n");
}

#[test]
fn one_run_is_one_column() {
    check(
        &[("c4w3", 50.0, 100.0)],
        "c4w3: best 50/100 (run 1 of 1), last 50
  100 ┤
      │▄
    0 ┤█
      └^
       run 1, ^ best
    t1                             50.0
",
    );
}

#[test]
fn columns_scale_to_the_maximum_and_mark_the_first_best() {
    // 0, a sliver, a quarter, half, 87.5 %, full, full again, 75 %: eight levels per row, three rows.
    let scores = [0.0, 1.0, 25.0, 50.0, 87.5, 100.0, 100.0, 75.0];
    let runs: Vec<(&str, f64, f64)> = scores.iter().map(|&s| ("c4w3", s, 100.0)).collect();
    check(
        &runs,
        "c4w3: best 100/100 (run 6 of 8), last 75
  100 ┤    ▅██▂
      │   ▄████
    0 ┤ ▁▆█████
      └─────^──
       runs 1–8, ^ best
    t1                             75.0
",
    );
}

#[test]
fn weeks_are_plotted_apart_in_id_order_with_their_own_maximum() {
    check(
        &[("c4w3", 10.0, 20.0), ("c3w1", 7.5, 10.0), ("c4w3", 20.0, 20.0), ("c3w1", 2.5, 10.0)],
        "c3w1: best 7.5/10 (run 1 of 2), last 2.5
  10 ┤▂
     │█
   0 ┤█▆
     └^─
      runs 1–2, ^ best
    t1                              2.5
c4w3: best 20/20 (run 2 of 2), last 20
  20 ┤ █
     │▄█
   0 ┤██
     └─^
      runs 1–2, ^ best
    t1                             20.0
",
    );
}

#[test]
fn long_histories_show_the_last_runs_and_where_the_best_was() {
    // The best run comes first; the plot keeps the last PLOT_RUNS runs, all at half marks.
    let mut runs = vec![("c4w3", 100.0, 100.0)];
    runs.extend(std::iter::repeat_n(("c4w3", 50.0, 100.0), PLOT_RUNS));
    let text = render(&entries(&runs));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("c4w3: best 100/100 (run 1 of {}), last 50", PLOT_RUNS + 1));
    assert_eq!(lines[2], format!("      │{}", "▄".repeat(PLOT_RUNS)));
    assert_eq!(lines[4], format!("      └{}", "─".repeat(PLOT_RUNS)));
    assert_eq!(lines[5], format!("       runs 2–{} (the last {PLOT_RUNS}), best: run 1, before these", PLOT_RUNS + 1));
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{text}");
}

#[test]
fn json_lists_every_run_the_best_and_the_last_tasks() {
    let doc = to_json(&entries(&[("c4w3", 10.0, 20.0), ("c4w3", 15.0, 20.0), ("c4w3", 12.0, 20.0)]));
    let week = &doc["weeks"][0];
    assert_eq!(doc["weeks"].as_array().map(Vec::len), Some(1));
    assert_eq!(week["week"], "c4w3");
    assert_eq!(week["max_score"], 20.0);
    assert_eq!(
        week["runs"],
        serde_json::json!([
            { "run": 1, "timestamp": 1_800_000_000u64, "score": 10.0, "max_score": 20.0 },
            { "run": 2, "timestamp": 1_800_000_001u64, "score": 15.0, "max_score": 20.0 },
            { "run": 3, "timestamp": 1_800_000_002u64, "score": 12.0, "max_score": 20.0 },
        ])
    );
    assert_eq!(week["best"]["run"], 2);
    assert_eq!(week["last_tasks"], serde_json::json!({ "t1": 12.0 }));
    let plot: Vec<&str> = week["plot"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(plot, ["  20 ┤ ▂", "     │▄█▆", "   0 ┤███", "     └─^─", "      runs 1–3, ^ best"]);
}
