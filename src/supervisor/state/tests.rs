use super::*;

use std::path::PathBuf;

use zerolog::element::ElementConfig;

fn settings() -> ProcessSettings {
    ProcessSettings {
        restart: RestartPolicy::Always,
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(10),
        backoff: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        max_restarts: 5,
        min_uptime: Duration::from_secs(5),
        env: BTreeMap::new(),
        cwd: None,
        user: None,
        group: None,
    }
}

fn spec(name: &str, tier: Tier) -> ProgramSpec {
    ProgramSpec {
        name: name.into(),
        group: name.split(':').next().unwrap().into(),
        tier,
        argv: vec!["prog".into(), name.into()],
        env: BTreeMap::new(),
        settings: settings(),
        config: (tier == Tier::Forwarder).then(|| {
            let config = zerolog::forwarder::ForwarderConfig::default();
            (
                ElementConfig::Forwarder(config),
                PathBuf::from("/run/f.json"),
            )
        }),
        upstream: (tier == Tier::Worker).then(|| "all".to_string()),
        notifies: true,
    }
}

fn crash() -> ExitInfo {
    ExitInfo {
        code: None,
        signal: Some(9),
        text: "signal SIGKILL".into(),
    }
}

fn ok_exit() -> ExitInfo {
    ExitInfo {
        code: Some(0),
        signal: None,
        text: "exit status 0".into(),
    }
}

/// A supervisor with the three tiers, all spawned with pids 100, 200, 300.
fn running(t0: Instant) -> Supervisor {
    let mut s = Supervisor::new(vec![
        spec("forwarder", Tier::Forwarder),
        spec("all", Tier::Receiver),
        spec("w:0", Tier::Worker),
    ]);
    let actions = s.start_all();
    assert_eq!(
        actions,
        vec![
            Action::Spawn("w:0".into()),
            Action::Spawn("all".into()),
            Action::Spawn("forwarder".into())
        ],
        "workers first, forwarder last"
    );
    s.spawned("forwarder", 100, t0);
    s.spawned("all", 200, t0);
    s.spawned("w:0", 300, t0);
    s
}

fn sig(name: &str, pid: i32, signal: Signal) -> Action {
    Action::Signal {
        name: name.into(),
        pid,
        signal,
    }
}

#[test]
fn receiver_is_paused_while_its_worker_stops_outside_shutdown() {
    let t0 = Instant::now();
    let mut s = running(t0);
    assert_eq!(s.sync_pauses(), vec![], "nothing stops: no pause");
    let stop = s.restart("w:0", t0).unwrap();
    assert_eq!(stop.actions, vec![sig("w:0", 300, Signal::SIGTERM)]);
    assert_eq!(s.sync_pauses(), vec![sig("all", 200, Signal::SIGUSR1)]);
    assert_eq!(s.sync_pauses(), vec![], "paused once");
    let after = s.exited(300, ok_exit(), t0);
    assert_eq!(after, vec![Action::Spawn("w:0".into())]);
    assert_eq!(s.sync_pauses(), vec![sig("all", 200, Signal::SIGUSR2)]);
    assert_eq!(s.sync_pauses(), vec![]);

    // A receiver that restarted while paused is paused again under its new pid, and the
    // old pid gets no resume.
    s.spawned("w:0", 301, t0);
    s.stop("w:0", t0).unwrap();
    assert_eq!(s.sync_pauses(), vec![sig("all", 200, Signal::SIGUSR1)]);
    s.exited(200, crash(), t0);
    s.spawned("all", 201, t0);
    assert_eq!(s.sync_pauses(), vec![sig("all", 201, Signal::SIGUSR1)]);
    s.exited(301, ok_exit(), t0);
    assert_eq!(s.sync_pauses(), vec![sig("all", 201, Signal::SIGUSR2)]);
}

#[test]
fn no_pause_during_shutdown() {
    let t0 = Instant::now();
    let mut s = running(t0);
    s.shutdown(t0);
    s.exited(100, ok_exit(), t0);
    s.exited(200, ok_exit(), t0);
    assert_eq!(s.state("w:0").unwrap().name(), ProgramState::Stopping);
    assert_eq!(s.sync_pauses(), vec![], "the receiver stopped first");
}

#[test]
fn backoff_sequence_then_fatal() {
    let t0 = Instant::now();
    let mut s = running(t0);
    let mut now = t0;
    let mut delays = Vec::new();
    let mut pid = 300;
    loop {
        now += Duration::from_millis(10);
        let actions = s.exited(pid, crash(), now);
        match s.state("w:0").unwrap() {
            State::Fatal => break,
            State::Backoff { until } => {
                assert!(actions.is_empty());
                delays.push(until - now);
                assert_eq!(s.next_deadline(), Some(until));
                assert!(s.tick(until - Duration::from_millis(1)).is_empty());
                now = until;
                assert_eq!(s.tick(now), vec![Action::Spawn("w:0".into())]);
            }
            State::Stopped => {
                assert_eq!(actions, vec![Action::Spawn("w:0".into())]);
                delays.push(Duration::ZERO);
            }
            other => panic!("unexpected {other:?}"),
        }
        pid += 1;
        s.spawned("w:0", pid, now);
    }
    let ms: Vec<u128> = delays.iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, vec![0, 100, 200, 400, 800]);
    // FATAL is visible and leaves the others alone.
    let st = s.status(now);
    let w = st.iter().find(|r| r.name == "w:0").unwrap();
    assert_eq!(w.state, ProgramState::Fatal);
    assert_eq!(w.restarts, 5);
    assert!(st
        .iter()
        .filter(|r| r.name != "w:0")
        .all(|r| r.state == ProgramState::Running));
    // An operator can start it again.
    assert_eq!(
        s.start("w").unwrap().actions,
        vec![Action::Spawn("w:0".into())]
    );
}

#[test]
fn backoff_is_capped_and_reset_by_a_long_run() {
    let st = settings();
    let ms: Vec<u128> = (1..=8).map(|f| backoff_delay(&st, f).as_millis()).collect();
    assert_eq!(ms, vec![0, 100, 200, 400, 800, 1600, 2000, 2000]);
    assert_eq!(backoff_delay(&st, 200), Duration::from_secs(2));

    let t0 = Instant::now();
    let mut s = running(t0);
    s.exited(300, crash(), t0 + Duration::from_millis(5));
    s.spawned("w:0", 301, t0 + Duration::from_millis(6));
    s.exited(301, crash(), t0 + Duration::from_millis(7));
    assert!(matches!(s.state("w:0"), Some(State::Backoff { .. })));
    s.tick(t0 + Duration::from_secs(1));
    s.spawned("w:0", 302, t0 + Duration::from_secs(1));
    // Ran 10 s, longer than min_uptime: the next crash restarts immediately again.
    let actions = s.exited(302, crash(), t0 + Duration::from_secs(11));
    assert_eq!(actions, vec![Action::Spawn("w:0".into())]);
}

#[test]
fn restart_policies() {
    let t0 = Instant::now();
    let mut s = running(t0);
    s.programs.get_mut("w:0").unwrap().spec.settings.restart = RestartPolicy::OnFailure;
    assert!(s.exited(300, ok_exit(), t0).is_empty());
    assert_eq!(s.state("w:0"), Some(State::Exited));
    s.programs.get_mut("all").unwrap().spec.settings.restart = RestartPolicy::Never;
    assert!(s.exited(200, crash(), t0).is_empty());
    assert_eq!(s.state("all"), Some(State::Exited));
    // Unknown pids (reaped orphans) change nothing.
    assert!(s.exited(999, crash(), t0).is_empty());
}

#[test]
fn shutdown_goes_tier_by_tier_and_kills_after_timeout() {
    let t0 = Instant::now();
    let mut s = running(t0);
    let sig = |name: &str, pid| Action::Signal {
        name: name.into(),
        pid,
        signal: Signal::SIGTERM,
    };
    assert_eq!(s.shutdown(t0), vec![sig("forwarder", 100)]);
    // A crash while shutting down is not restarted.
    assert_eq!(s.exited(100, ok_exit(), t0), vec![sig("all", 200)]);
    // The receiver overstays its stop timeout.
    let late = t0 + Duration::from_secs(10);
    assert_eq!(s.next_deadline(), Some(late));
    assert_eq!(
        s.tick(late),
        vec![Action::Signal {
            name: "all".into(),
            pid: 200,
            signal: Signal::SIGKILL
        }]
    );
    assert_eq!(s.exited(200, crash(), late), vec![sig("w:0", 300)]);
    assert_eq!(s.exited(300, ok_exit(), late), vec![Action::Exit]);
    assert!(s.restart("w", late).is_err());
}

#[test]
fn operator_restart_and_stop() {
    let t0 = Instant::now();
    let mut s = running(t0);
    let actions = s.restart("w:0", t0).unwrap().actions;
    assert!(matches!(&actions[..], [Action::Signal { pid: 300, .. }]));
    assert_eq!(
        s.exited(300, ok_exit(), t0),
        vec![Action::Spawn("w:0".into())]
    );
    s.spawned("w:0", 301, t0);
    assert_eq!(
        s.status(t0)
            .iter()
            .find(|r| r.name == "w:0")
            .unwrap()
            .restarts,
        1
    );
    s.stop("w", t0).unwrap();
    assert!(s.exited(301, ok_exit(), t0).is_empty());
    assert_eq!(s.state("w:0"), Some(State::Stopped));
    assert!(s.stop("nope", t0).is_err());
}

#[test]
fn reload_touches_only_what_changed() {
    let t0 = Instant::now();
    let mut s = running(t0);
    let mut fwd = spec("forwarder", Tier::Forwarder);
    if let Some((ElementConfig::Forwarder(f), _)) = &mut fwd.config {
        f.wait_subscribers = 3;
    }
    let mut recv = spec("all", Tier::Receiver);
    recv.argv.push("--hwm=5".into());
    let new = vec![
        fwd,
        recv,
        spec("w:1", Tier::Worker),
        spec("w:2", Tier::Worker),
    ];
    let (actions, summary) = s.reload(new, t0);
    assert_eq!(summary.unchanged, 1);
    assert_eq!(summary.restarted, vec!["all".to_string()]);
    assert_eq!(summary.started, vec!["w:1".to_string(), "w:2".to_string()]);
    assert_eq!(summary.stopped, vec!["w:0".to_string()]);
    assert!(actions.contains(&Action::Spawn("w:1".into())));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Signal { pid: 200, .. })));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Signal { pid: 300, .. })));
    // The unchanged forwarder is not stopped: it gets SIGHUP, to re-read its TLS files.
    let to_forwarder: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Signal {
                pid: 100, signal, ..
            } => Some(*signal),
            _ => None,
        })
        .collect();
    assert_eq!(to_forwarder, vec![Signal::SIGHUP]);
    // The removed worker disappears once it has stopped; the changed receiver restarts.
    assert!(s.exited(300, ok_exit(), t0).is_empty());
    assert!(s.state("w:0").is_none());
    assert_eq!(
        s.exited(200, ok_exit(), t0),
        vec![Action::Spawn("all".into())]
    );
    assert_eq!(s.spec("all").unwrap().argv.last().unwrap(), "--hwm=5");
}

#[test]
fn spawn_failure_counts_as_a_crash() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec("w:0", Tier::Worker)]);
    s.start_all();
    let actions = s.spawn_failed("w:0", "No such file", t0);
    assert_eq!(actions, vec![Action::Spawn("w:0".into())]);
    let actions = s.spawn_failed("w:0", "No such file", t0);
    assert!(actions.is_empty());
    assert!(matches!(s.state("w:0"), Some(State::Backoff { .. })));
}

/// The last command wins, and says what it does, even while the program is still stopping.
#[test]
fn commands_while_a_program_stops_are_kept() {
    let t0 = Instant::now();
    let mut s = running(t0);
    let outcome = |c: Commanded| c.outcomes.into_iter().map(|(_, o)| o).collect::<Vec<_>>();
    // stop, then start before it has exited: it comes back.
    assert_eq!(outcome(s.stop("w:0", t0).unwrap()), [Outcome::Stopping]);
    assert_eq!(
        outcome(s.start("w:0").unwrap()),
        [Outcome::StartsOnceStopped]
    );
    assert_eq!(
        s.exited(300, ok_exit(), t0),
        vec![Action::Spawn("w:0".into())]
    );
    s.spawned("w:0", 301, t0);
    assert_eq!(outcome(s.start("w:0").unwrap()), [Outcome::AlreadyRunning]);

    // restart, then stop before it has exited: it stays stopped.
    assert_eq!(
        outcome(s.restart("w:0", t0).unwrap()),
        [Outcome::Restarting]
    );
    assert_eq!(outcome(s.stop("w:0", t0).unwrap()), [Outcome::StaysStopped]);
    assert!(s.exited(301, ok_exit(), t0).is_empty());
    assert_eq!(s.state("w:0"), Some(State::Stopped));
    assert_eq!(
        outcome(s.stop("w:0", t0).unwrap()),
        [Outcome::AlreadyStopped]
    );

    // A program leaving the topology is not brought back by a start or restart.
    s.start("w:0").unwrap();
    s.spawned("w:0", 302, t0);
    s.reload(
        vec![
            spec("forwarder", Tier::Forwarder),
            spec("all", Tier::Receiver),
        ],
        t0,
    );
    s.start("w:0").unwrap();
    s.restart("w:0", t0).unwrap();
    assert!(s.exited(302, ok_exit(), t0).is_empty());
    assert_eq!(s.state("w:0"), None);
}
