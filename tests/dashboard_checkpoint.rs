//! The dashboard's checkpoint across real processes: `cost-tracker
//! --dashboard` run by several processes at once over a ledger being
//! appended to prints exactly what a full recount prints, and the
//! checkpoint they leave is whole.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{DateTime, Duration, Utc};
use costlayer::ledger::CostRecord;
use costlayer::{Money, Usage};
use serde_json::Value;

const NOW: &str = "2026-11-16T12:00:00Z";
const CHECKPOINT: &str = "dashboard_checkpoint.bin";

fn cli(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cost-tracker"));
    c.current_dir(dir)
        .env("COSTLAYER_NOW", NOW)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "80")
        .env("COSTLAYER_USER", "alice")
        .env("COSTLAYER_MONTHLY_BUDGET", "50")
        .args(["--dashboard", "--team", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for v in [
        "COSTLAYER_DATA_DIR",
        "COSTLAYER_TOTAL_BUDGET",
        "COSTLAYER_ALERT_EMAILS",
        "COSTLAYER_CONFIG",
    ] {
        c.env_remove(v);
    }
    c
}

fn output(c: std::process::Child) -> Value {
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn append(dir: &Path, user: &str, from: u64, n: u64) {
    let now = DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("costs_{user}.jsonl")))
        .unwrap();
    let mut buf = Vec::new();
    for i in from..from + n {
        let mut r = CostRecord::new(user, "openai", "gpt-4o", Usage::new(1_000, i % 700));
        r.ts = now - Duration::minutes(i64::try_from((i * 7_919) % (40 * 24 * 60)).unwrap());
        r.nano_usd = Some(Money::from_nanos(i64::try_from(i % 9_000_000).unwrap()));
        serde_json::to_writer(&mut buf, &r).unwrap();
        buf.push(b'\n');
    }
    f.write_all(&buf).unwrap();
}

/// What a full recount prints (no checkpoint to start from).
fn full(tmp: &Path, data: &Path) -> Value {
    let _ = std::fs::remove_file(data.join(CHECKPOINT));
    output(cli(tmp).spawn().unwrap())
}

#[test]
fn processes_running_the_dashboard_at_once_print_the_full_recount() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data/metadata");
    std::fs::create_dir_all(&data).unwrap();
    append(&data, "alice", 0, 20_000);
    append(&data, "bob", 0, 20_000);
    let mut next = 20_000;
    for round in 0..4 {
        // Four dashboards at once while records are appended.
        let children: Vec<_> = (0..4).map(|_| cli(tmp.path()).spawn().unwrap()).collect();
        append(&data, "alice", next, 500);
        let outs: Vec<Value> = children.into_iter().map(output).collect();
        // Each saw the ledger before or after the append, never a mix.
        let before = outs[0]["total_calls"].as_u64().unwrap();
        for o in &outs {
            let calls = o["total_calls"].as_u64().unwrap();
            assert!(calls == before || calls == before + 500 || before == calls + 500);
        }
        next += 500;
        // The checkpoint they left is used, and is exact.
        let repeat = output(cli(tmp.path()).spawn().unwrap());
        let reference = full(tmp.path(), &data);
        assert_eq!(repeat, reference, "round {round}");
        assert_eq!(
            reference["total_calls"].as_u64().unwrap(),
            20_000 + next,
            "round {round}"
        );
        // At once again, from the same checkpoint: all equal the recount.
        let children: Vec<_> = (0..3).map(|_| cli(tmp.path()).spawn().unwrap()).collect();
        for o in children.into_iter().map(output) {
            assert_eq!(o, reference, "round {round}");
        }
    }
    let left: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(data.join(CHECKPOINT).is_file());
}
