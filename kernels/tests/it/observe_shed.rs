//! Tests of `kernels::observe::shed` (load shedding by priority) and `kernels::observe::canary`
//! (the canary controller) as pure state machines: every call takes a number of milliseconds, so
//! the scripts below move time by hand and nothing sleeps.

use kernels::Error;
use kernels::observe::canary::{
    Arm, ArmStats, CanaryConfig, CanaryController, CanaryState, Verdict, bucket, evaluate, percentile,
};
use kernels::observe::shed::{Priority, PriorityShedder, Reserves, Shed, ShedConfig};

use Priority::{Critical, High, Low, Normal};

// ---- priorities and configs ----------------------------------------------------------

#[test]
fn priorities_parse_from_names_and_numbers() {
    for (text, want) in [
        ("critical", Some(Critical)),
        ("HIGH", Some(High)),
        (" normal ", Some(Normal)),
        ("low", Some(Low)),
        ("0", Some(Critical)),
        ("3", Some(Low)),
        ("4", None),
        ("urgent", None),
        ("", None),
    ] {
        match (Priority::parse(text), want) {
            (Ok(p), Some(w)) => assert_eq!(p, w, "{text:?}"),
            (Err(Error::ShedConfig(m)), None) => assert!(m.contains("priority"), "{m}"),
            (got, _) => panic!("{text:?}: {got:?}, wanted {want:?}"),
        }
    }
    assert!(Critical < Low, "ordered from the most to the least critical");
    assert_eq!(Priority::ALL.map(Priority::name), ["critical", "high", "normal", "low"]);
}

fn check_config_error(config: ShedConfig, names: &str) {
    match PriorityShedder::new(config, 0) {
        Err(Error::ShedConfig(m)) => assert!(m.contains(names), "{m:?} does not name {names:?}"),
        other => panic!("expected a ShedConfig error naming {names:?}, got {other:?}"),
    }
}

#[test]
fn invalid_shed_configs_are_typed_errors_naming_the_key() {
    check_config_error(ShedConfig::new(0.5, 1.0), "capacity");
    check_config_error(ShedConfig::new(f64::NAN, 1.0), "capacity");
    check_config_error(ShedConfig::new(10.0, 0.0), "refill_per_s");
    let with = |r: Reserves| ShedConfig { reserves: r, ..ShedConfig::new(10.0, 1.0) };
    check_config_error(with(Reserves { low: 1.0, ..Reserves::default() }), "reserves.low");
    check_config_error(with(Reserves { high: 0.6, ..Reserves::default() }), "reserves.normal");
    check_config_error(with(Reserves { critical: -0.1, ..Reserves::default() }), "reserves.critical");
}

// ---- the bucket with reserves ------------------------------------------------------------

/// One step of a script: at `t` ms, a request of class `p` arrives and is admitted or shed.
struct Step {
    t: u64,
    p: Priority,
    want: std::result::Result<(), Shed>,
}

fn run(config: ShedConfig, script: &[Step]) -> PriorityShedder {
    let mut s = PriorityShedder::new(config, 0).unwrap();
    for (i, step) in script.iter().enumerate() {
        let got = s.try_acquire(step.p, step.t).map(|_| ());
        assert_eq!(got, step.want, "step {i}: {:?} at {} ms (level {:.2})", step.p, step.t, s.level(step.t));
    }
    s
}

fn ok(t: u64, p: Priority) -> Step {
    Step { t, p, want: Ok(()) }
}

fn rate(t: u64, p: Priority, retry_after_ms: u64) -> Step {
    Step { t, p, want: Err(Shed::Rate { retry_after_ms }) }
}

#[test]
fn a_burst_sheds_low_first_then_normal_then_high_and_critical_takes_the_last_token() {
    // Capacity 10, refill 1 per second, default reserves: low keeps 5, normal 3, high 1, critical 0.
    let config = ShedConfig::new(10.0, 1.0);
    let mut script = Vec::new();
    // Low drains the bucket from 10 to 5 (5 tokens), then is shed: it needs 6 (5 + 1) and there
    // are 5, so 1 s until it may pass.
    script.extend((0..5).map(|_| ok(0, Low)));
    script.push(rate(0, Low, 1_000));
    // Normal may go on down to 3: two more.
    script.extend([ok(0, Normal), ok(0, Normal), rate(0, Normal, 1_000), rate(0, Low, 3_000)]);
    // High down to 1, critical takes the last one.
    script.extend([ok(0, High), ok(0, High), rate(0, High, 1_000), ok(0, Critical), rate(0, Critical, 1_000)]);
    // 1.5 s later 1.5 tokens are back: critical and nothing else may pass.
    script.extend([rate(1_500, High, 500), ok(1_500, Critical), rate(1_500, Critical, 500)]);
    // 10 s later the bucket is full again (capped at 10) and low passes.
    script.extend([ok(11_500, Low)]);
    let s = run(config, &script);
    assert_eq!(s.counts(Low), (6, 2));
    assert_eq!(s.counts(Critical), (2, 2));
    assert_eq!(s.in_flight(), 12);
}

#[test]
fn fractional_refill_and_a_custom_reserve_table() {
    // 4 tokens, 2 per second; low may not go below half (2), nothing reserved for the others.
    let config = ShedConfig {
        reserves: Reserves { critical: 0.0, high: 0.0, normal: 0.0, low: 0.5 },
        ..ShedConfig::new(4.0, 2.0)
    };
    run(
        config,
        &[
            ok(0, Low),
            ok(0, Low),
            rate(0, Low, 500),
            ok(0, Normal),
            ok(0, High),
            rate(0, Normal, 500),
            // 250 ms: half a token back; 0.5 short of one.
            rate(250, Normal, 250),
            ok(500, Normal),
            rate(500, Low, 1_500),
        ],
    );
}

#[test]
fn the_in_flight_cap_keeps_slots_for_the_critical_and_estimates_the_wait() {
    // A bucket that never runs out, 10 slots: low may fill 5, normal 7, high 9, critical 10.
    let config = ShedConfig { max_in_flight: 10, ..ShedConfig::new(1_000.0, 1_000.0) };
    let mut s = PriorityShedder::new(config, 0).unwrap();
    let mut permits = Vec::new();
    for (p, admitted) in [(Low, 5), (Normal, 2), (High, 2), (Critical, 1)] {
        for _ in 0..admitted {
            permits.push(s.try_acquire(p, 0).unwrap());
        }
        // Before any request finished, a refusal estimates one second.
        assert_eq!(s.try_acquire(p, 0), Err(Shed::InFlight { retry_after_ms: 1_000 }), "{p:?}");
    }
    assert_eq!(s.in_flight(), 10);
    // Releases feed the service-time estimate (EWMA, α = 0.2): 200 ms, then 400 ms → 240 ms.
    s.release(permits.remove(0), 200);
    assert_eq!(s.try_acquire(Low, 200), Err(Shed::InFlight { retry_after_ms: 200 }), "9 in flight, low's share is 5");
    s.release(permits.remove(0), 400);
    assert!(s.try_acquire(High, 400).is_ok(), "8 in flight, high's share is 9");
    assert_eq!(s.try_acquire(High, 400), Err(Shed::InFlight { retry_after_ms: 240 }));
    assert_eq!(s.in_flight(), 9);
}

#[test]
fn every_class_has_at_least_one_slot_on_a_tiny_server() {
    // 1 slot: even low (reserve 0.5 → 0.5 slots) gets the one slot of an idle server.
    let config = ShedConfig { max_in_flight: 1, ..ShedConfig::new(100.0, 100.0) };
    let mut s = PriorityShedder::new(config, 0).unwrap();
    let p = s.try_acquire(Low, 0).unwrap();
    assert!(matches!(s.try_acquire(Critical, 0), Err(Shed::InFlight { .. })));
    s.release(p, 10);
    assert!(s.try_acquire(Critical, 10).is_ok());
}

// ---- the canary controller ------------------------------------------------------------------

fn canary_config() -> CanaryConfig {
    CanaryConfig {
        percent: 5.0,
        window_ms: 60_000,
        min_requests: 10,
        max_error_rate: 0.05,
        max_p99_ms: 500,
        steps: vec![5.0, 25.0, 50.0, 100.0],
    }
}

fn stats(ok: u64, errors: u64, latency_ms: u64) -> ArmStats {
    let mut s = ArmStats::default();
    for i in 0..ok + errors {
        s.record(i >= errors, latency_ms);
    }
    s
}

#[test]
fn invalid_canary_configs_are_typed_errors_naming_the_key() {
    for (change, names) in [
        ((|c: &mut CanaryConfig| c.percent = 0.0) as fn(&mut CanaryConfig), "percent"),
        (|c: &mut CanaryConfig| c.percent = 101.0, "percent"),
        (|c: &mut CanaryConfig| c.window_ms = 0, "window_ms"),
        (|c: &mut CanaryConfig| c.min_requests = 0, "min_requests"),
        (|c: &mut CanaryConfig| c.max_error_rate = 1.5, "max_error_rate"),
        (|c: &mut CanaryConfig| c.steps = vec![5.0, 5.0], "steps[1]"),
        (|c: &mut CanaryConfig| c.steps = vec![0.0], "steps[0]"),
    ] {
        let mut c = canary_config();
        change(&mut c);
        match CanaryController::new(c, 0) {
            Err(Error::CanaryConfig(m)) => assert!(m.contains(names), "{m:?} does not name {names:?}"),
            other => panic!("expected a CanaryConfig error naming {names:?}, got {other:?}"),
        }
    }
}

#[test]
fn percentiles_are_nearest_rank() {
    for (values, q, want) in [
        (vec![], 0.99, 0),
        (vec![7], 0.99, 7),
        ((1..=100).collect::<Vec<u64>>(), 0.99, 99),
        ((1..=100).collect(), 0.5, 50),
        ((1..=1000).rev().collect(), 0.99, 990),
        (vec![5, 1, 9], 1.0, 9),
    ] {
        assert_eq!(percentile(&values, q), want, "{values:?} q={q}");
    }
}

#[test]
fn verdicts_follow_the_slos_and_the_stable_arm() {
    let c = canary_config();
    let promote = |to: f64| Verdict::Promote { to };
    for (name, stable, canary, percent, want) in [
        ("too few samples", stats(100, 0, 10), stats(9, 0, 10), 5.0, "hold"),
        ("healthy at 5 %", stats(100, 0, 10), stats(20, 0, 10), 5.0, "promote 25"),
        ("healthy at 50 %", stats(100, 0, 10), stats(20, 0, 10), 50.0, "promote 100"),
        ("1 error in 20 is 5 %: at the limit, not over", stats(100, 0, 10), stats(19, 1, 10), 25.0, "promote 50"),
        ("2 errors in 20", stats(100, 0, 10), stats(18, 2, 10), 5.0, "rollback"),
        ("slow canary", stats(100, 0, 10), stats(20, 0, 900), 5.0, "rollback"),
        ("both arms failing", stats(80, 20, 10), stats(18, 2, 10), 5.0, "hold"),
        ("both arms slow", stats(100, 0, 1_000), stats(20, 0, 900), 5.0, "hold"),
        ("stable failing but too few samples to judge it", stats(4, 4, 10), stats(18, 2, 10), 5.0, "rollback"),
    ] {
        let got = evaluate(&c, percent, &stable, &canary);
        let short = match &got {
            Verdict::Promote { to } => format!("promote {to}"),
            Verdict::Hold { .. } => "hold".into(),
            Verdict::RollBack { .. } => "rollback".into(),
        };
        assert_eq!(short, want, "{name}: {got:?}");
        if want.starts_with("promote") {
            assert!(matches!(got, Verdict::Promote { .. }) && got == promote(want[8..].parse().unwrap()));
        }
    }
    match evaluate(&c, 5.0, &stats(100, 0, 10), &stats(18, 2, 10)) {
        Verdict::RollBack { reason } => assert!(reason.contains("error rate 0.100 over 0.05"), "{reason}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn assignment_is_sticky_and_widening_only_adds_users() {
    let keys: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    let share = |percent: f64| {
        let mut c = canary_config();
        c.percent = percent;
        let ctl = CanaryController::new(c, 0).unwrap();
        keys.iter().map(|k| ctl.assign(k) == Arm::Canary).collect::<Vec<bool>>()
    };
    let (five, fifty) = (share(5.0), share(50.0));
    let n5 = five.iter().filter(|c| **c).count();
    let n50 = fifty.iter().filter(|c| **c).count();
    assert!((400..600).contains(&n5), "{n5} of 10,000 at 5 %");
    assert!((4_800..5_200).contains(&n50), "{n50} of 10,000 at 50 %");
    assert!(five.iter().zip(&fifty).all(|(a, b)| !a || *b), "everyone in the 5 % stays in at 50 %");
    assert_eq!(bucket("user-1"), bucket("user-1"));
    assert!(bucket("anything") < 10_000);
}

#[test]
fn a_healthy_canary_climbs_every_step_and_a_broken_one_is_rolled_back_within_a_window() {
    let mut ctl = CanaryController::new(canary_config(), 0).unwrap();
    let mut now = 0;
    let mut seen = vec![ctl.state().percent()];
    for _ in 0..3 {
        for _ in 0..20 {
            ctl.record(Arm::Stable, true, 10);
            ctl.record(Arm::Canary, true, 12);
        }
        assert_eq!(ctl.tick(now + 59_999), None, "no verdict before the window ends");
        now += 60_000;
        let t = ctl.tick(now).expect("a transition at the window's end");
        seen.push(t.to.percent());
    }
    assert_eq!(seen, [5.0, 25.0, 50.0, 100.0]);
    assert_eq!(ctl.state(), &CanaryState::Promoted);
    assert_eq!(ctl.history().len(), 3);
    assert_eq!(ctl.assign("anyone"), Arm::Canary);

    // Broken: 3 of 20 canary requests fail. Too few samples in the first window: hold (kept).
    let mut ctl = CanaryController::new(canary_config(), 0).unwrap();
    for i in 0..8 {
        ctl.record(Arm::Canary, i % 4 != 0, 10);
    }
    assert_eq!(ctl.tick(60_000), None);
    assert!(matches!(ctl.last_verdict(), Some(Verdict::Hold { .. })));
    assert_eq!(ctl.window().1.total(), 8, "the held window's samples are kept");
    for i in 0..12 {
        ctl.record(Arm::Canary, i % 12 != 0, 10);
    }
    let t = ctl.tick(120_000).expect("rolled back");
    assert!(matches!(t.to, CanaryState::RolledBack { .. }), "{t:?}");
    assert!(t.reason.contains("3 of 20"), "{}", t.reason);
    assert_eq!(ctl.state().gauge(), 2.0);
    assert_eq!(ctl.assign("anyone"), Arm::Stable);
    ctl.record(Arm::Canary, false, 10);
    assert_eq!(ctl.tick(1_000_000), None, "a rolled-back canary stays rolled back");
}
