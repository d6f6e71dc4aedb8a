//! A shared ledger directory and hostile inputs: a teammate's committed
//! files, a provider's or an SMTP server's replies, must not hurt the user,
//! leak a secret or falsify a total.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use chrono::{TimeZone, Utc};
use costlayer::alert::EmailSink;
use costlayer::budget::{Budget, Threshold};
use costlayer::config::SmtpTls;
use costlayer::ledger::{CostRecord, JsonlStorage, ScanFilter, ScanItem, Storage};
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::report::{CsvWriter, DashboardPass};
use costlayer::tracker::{AlertRetry, CostTracker};
use costlayer::{ChatRequest, ChatResponse, Message, Money, Usage};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const NOW: &str = "2026-11-16T12:00:00Z";

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 16, 12, 0, 0).unwrap()
}

fn cli(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("cost-tracker").unwrap();
    c.current_dir(dir)
        .env("COSTLAYER_NOW", NOW)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env("COSTLAYER_USER", "alice")
        .env("COSTLAYER_DATA_DIR", dir.join("data"));
    for v in [
        "COSTLAYER_MONTHLY_BUDGET",
        "COSTLAYER_TOTAL_BUDGET",
        "COSTLAYER_ALERT_EMAILS",
        "COSTLAYER_CONFIG",
        "COSTLAYER_PRICES",
        "COSTLAYER_LEGACY_USER",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
    ] {
        c.env_remove(v);
    }
    c
}

fn rec(user: &str, nanos: i64) -> CostRecord {
    let mut r = CostRecord::new(user, "openai", "gpt-4o", Usage::new(100, 10));
    r.ts = Utc.with_ymd_and_hms(2026, 11, 10, 9, 0, 0).unwrap();
    r.nano_usd = Some(Money::from_nanos(nanos));
    r
}

fn line(r: &CostRecord) -> String {
    serde_json::to_string(r).unwrap()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// Every file under `dir`, recursively, with its bytes.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

// ------------------------------------------------------------- symlinks ---

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_ledger_is_never_written_through_read_or_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    // A stand-in for ~/.bashrc, outside the directory.
    let outside = tmp.path().join("bashrc");
    std::fs::write(&outside, b"export SECRET_TOKEN=hunter2-outside\n").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("costs_alice.jsonl")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("costs.json")).unwrap();
    write_lines(&dir.join("costs_bob.jsonl"), &[line(&rec("bob", 5))]);

    // Alice's next call: the append fails and says why; nothing written there.
    let alice = JsonlStorage::builder(&dir).user("alice").build().unwrap();
    let err = alice
        .append(&rec("alice", 7))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        std::fs::read(&outside).unwrap(),
        b"export SECRET_TOKEN=hunter2-outside\n"
    );

    // The team dashboard: both links reported and skipped, bob still read.
    let out = cli(tmp.path())
        .args(["--dashboard", "--team", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["total_calls"], 1);
    assert_eq!(v["corrupted_lines"], 2);
    let sources = v["corrupt_sources"].to_string();
    assert!(sources.contains("costs_alice.jsonl") && sources.contains("costs.json"));
    // Nothing of the target copied anywhere in the directory.
    for (path, bytes) in all_files(&dir) {
        assert!(!contains(&bytes, "hunter2-outside"), "{}", path.display());
    }
    assert_eq!(
        std::fs::read(&outside).unwrap(),
        b"export SECRET_TOKEN=hunter2-outside\n"
    );
    assert!(std::fs::symlink_metadata(dir.join("costs_alice.jsonl"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_quarantine_or_alert_history_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("quarantine")).unwrap();
    write_lines(
        &dir.join("costs_bob.jsonl"),
        &["{not json".to_owned(), line(&rec("bob", 1))],
    );
    let st = JsonlStorage::builder(&dir).user("bob").build().unwrap();
    let mut corrupt = Vec::new();
    st.scan_blocking(&ScanFilter::default(), |i| {
        if let ScanItem::Corrupt(c) = i {
            corrupt.push(c);
        }
    })
    .unwrap();
    assert_eq!(corrupt.len(), 1);
    assert!(corrupt[0].quarantined_to.is_none(), "{corrupt:?}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // An alert history that is a link: never written through.
    let target = tmp.path().join("profile");
    std::fs::write(&target, b"keep\n").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("alerts_bob.jsonl")).unwrap();
    let err = st
        .mark_alert("k", &serde_json::json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep\n");
}

// ------------------------------------------------------------ terminals ---

#[test]
fn control_characters_from_the_ledger_never_reach_the_terminal_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut r = rec("eve\r\x1b[2K\x1b[1Aalice  $0.00", 1_000);
    r.model = "gpt-4o\x1b]0;pwned\x07\u{9b}31m\u{202e}".into();
    r.provider = "openai\x08\x08\x7f".into();
    r.team = Some("red\nteam".into());
    r.tags.insert("k\x1b".into(), "v\x07\r".into());
    let mut unpriced = r.clone();
    unpriced.id = ulid::Ulid::new();
    unpriced.nano_usd = None;
    let name = costlayer::ledger::sanitize_user(&r.user).unwrap();
    write_lines(
        &dir.join(format!("costs_{name}.jsonl")),
        &[line(&r), line(&unpriced)],
    );
    // A file whose very name holds an escape, and a corrupt line in it.
    write_lines(&dir.join("costs_x\x1b[31m.jsonl"), &["{bad\x07".to_owned()]);
    let out = cli(tmp.path())
        .args(["--dashboard", "--team", "--verbose"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out.clone()).unwrap();
    for (i, c) in text.chars().enumerate() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{2028}'..='\u{202e}').contains(&c)),
            "raw {c:?} at {i} in:\n{text}"
        );
    }
    assert!(text.contains("\\x1B]0;pwned\\x07"), "{text}");
    assert!(text.contains("eve\\r\\x1B[2K"), "{text}");
}

// -------------------------------------------------------------- secrets ---

/// An SMTP server on 127.0.0.1 that offers AUTH and answers it with a 535
/// quoting the client's AUTH line (as some servers do).
async fn quoting_smtp_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 localhost ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_owned();
                    let upper = cmd.to_ascii_uppercase();
                    let reply = if upper.starts_with("EHLO") {
                        "250-localhost\r\n250 AUTH PLAIN LOGIN\r\n".to_owned()
                    } else if upper.starts_with("AUTH") {
                        format!("535 5.7.8 Authentication failed for: {cmd}\r\n")
                    } else if upper == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        "250 OK\r\n".to_owned()
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_smtp_reply_quoting_auth_leaves_no_secret_in_any_file() {
    let password = "correct-horse-battery-staple";
    let user = "alerts@example.com";
    let addr = quoting_smtp_server().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let storage = JsonlStorage::builder(&dir).user("alice").build().unwrap();
    let sink = EmailSink::builder("127.0.0.1")
        .port(addr.port())
        .tls(SmtpTls::None)
        .credentials(user, password)
        .from("alerts@example.com")
        .to("oncall@example.com")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut prices = PriceTable::empty("test");
    let one = Money::from_usd(1).unwrap();
    prices.insert(ModelPrice::new(
        "test-model",
        "openai",
        Rates::new(one, one),
    ));
    let tracker = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .prices(prices)
        .clock(costlayer::clock::ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap(),
        ))
        .budget(Budget::monthly(Money::from_nanos(10_000_000)).thresholds([Threshold::percent(80)]))
        .sink(sink)
        .alert_retry(AlertRetry {
            attempts: 2,
            backoff: Duration::from_millis(1),
        })
        .build()
        .unwrap();
    let req = ChatRequest::new("test-model").message(Message::user("hi"));
    let resp = ChatResponse {
        provider: "openai".into(),
        model: "test-model".into(),
        usage: Usage::new(9_000, 0),
        ..Default::default()
    };
    tracker.record(&req, &resp, None).await.unwrap();
    tracker.flush_alerts().await;
    let failures = tracker.delivery_failures();
    assert!(
        !failures.is_empty(),
        "the 535 must be recorded as a failure"
    );
    let plain = costlayer::core::redact::base64(format!("\0{user}\0{password}").as_bytes());
    let login = costlayer::core::redact::base64(password.as_bytes());
    let shown = format!("{failures:?}");
    for secret in [password, plain.as_str(), login.as_str()] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("535"), "{shown}");
    let files = all_files(&dir);
    assert!(!files.is_empty());
    for (path, bytes) in files {
        for secret in [password, plain.as_str(), login.as_str()] {
            assert!(!contains(&bytes, secret), "{secret} in {}", path.display());
        }
    }
}

#[test]
fn a_secret_in_the_base_url_never_reaches_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(tmp.path())
        .args(["chat", "--provider", "openai", "hello"])
        .env("OPENAI_API_KEY", "sk-test-not-a-real-key-123")
        .env("OPENAI_BASE_URL", "http://user:secret@127.0.0.1:1/")
        .timeout(Duration::from_secs(120))
        .assert()
        .failure()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stderr.is_empty());
    for s in ["secret", "sk-test-not-a-real-key-123"] {
        assert!(!stderr.contains(s), "{stderr}");
        assert!(!stdout.contains(s), "{stdout}");
    }
}

#[tokio::test]
async fn a_known_key_echoed_into_an_id_is_masked_in_the_ledger_and_csv() {
    let key = costlayer::core::ApiKey::new("sk-echoed-0123456789abcdef");
    let tmp = tempfile::tempdir().unwrap();
    let st = JsonlStorage::builder(tmp.path()).user("u").build().unwrap();
    let mut r = rec("u", 1);
    r.request_id = Some(format!("chatcmpl-{}", key.expose()).into());
    r.tags
        .insert("note".into(), format!("key={}", key.expose()));
    st.append(&r).await.unwrap();
    // The first append waits for its write; the next ones are queued and
    // serialised (and scrubbed) by the writer thread: the same masking.
    let mut queued = r.clone();
    queued.id = ulid::Ulid::new();
    st.append(&queued).await.unwrap();
    st.flush().await.unwrap();
    let bytes = std::fs::read(st.ledger_path()).unwrap();
    assert!(!contains(&bytes, key.expose()));
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(text.matches("chatcmpl-[REDACTED]").count(), 2, "{text}");
    assert_eq!(text.lines().count(), 2);
    let mut csv = Vec::new();
    let mut w = CsvWriter::new(&mut csv).unwrap();
    w.write(&r).unwrap();
    w.finish().unwrap();
    assert!(!contains(&csv, key.expose()));
}

// -------------------------------------------------------------- amounts ---

#[test]
fn negative_and_out_of_range_amounts_are_corrupt_in_every_parser() {
    let tmp = tempfile::tempdir().unwrap();
    let good = rec("u", 1_000);
    let canonical = line(&good);
    let negative = canonical.replace("\"nano_usd\":1000", "\"nano_usd\":-9000000000000000000");
    assert_ne!(negative, canonical);
    // The same line in another key order (the serde paths).
    let mut v: serde_json::Value = serde_json::from_str(&negative).unwrap();
    let reordered = {
        let o = v.as_object_mut().unwrap();
        let mut m: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for (k, x) in o.iter() {
            m.insert(k.clone(), x.clone());
        }
        serde_json::to_string(&m).unwrap()
    };
    let mut unknown = v.clone();
    unknown["future"] = serde_json::json!(1);
    v["nano_usd"] = serde_json::json!(2_000_000_000_000_000_000i64);
    let huge = serde_json::to_string(&v).unwrap();
    let tokens = canonical.replace(
        "\"input_tokens\":100",
        "\"input_tokens\":18000000000000000000",
    );
    let saved = canonical.replace("\"cached\":false", "\"cached\":true,\"saved_nano_usd\":-5");
    let form_feed = format!("{canonical}\x0c");
    let lines = vec![
        canonical.clone(),
        negative,
        reordered,
        serde_json::to_string(&unknown).unwrap(),
        huge,
        tokens,
        saved,
        form_feed,
        canonical.clone(),
    ];
    write_lines(&tmp.path().join("costs_u.jsonl"), &lines);
    std::fs::write(
        tmp.path().join("costs.json"),
        r#"[{"ts": "2026-11-10T00:00:00Z", "model": "gpt-4o", "cost": -5},
            {"ts": "2026-11-10T00:00:00Z", "model": "gpt-4o", "prompt_tokens": -1},
            {"ts": "2026-11-10T00:00:00Z", "model": "gpt-4o", "cost": 0.5}]"#,
    )
    .unwrap();
    let st = JsonlStorage::builder(tmp.path()).user("u").build().unwrap();
    let mut corrupt = Vec::new();
    let mut total = Money::ZERO;
    let s = st
        .scan_blocking(&ScanFilter::default(), |i| match i {
            ScanItem::Record(r) => total += r.cost(),
            ScanItem::Corrupt(c) => corrupt.push(c),
        })
        .unwrap();
    let jsonl: Vec<u64> = corrupt
        .iter()
        .filter(|c| c.source.ends_with("costs_u.jsonl"))
        .map(|c| c.line)
        .collect();
    assert_eq!(jsonl, [2, 3, 4, 5, 6, 7, 8], "{corrupt:#?}");
    assert!(corrupt.iter().any(|c| c.reason.contains("negative")));
    assert!(corrupt.iter().any(|c| c.reason.contains("over the limit")));
    assert_eq!(s.records, 3, "two good lines and one good legacy entry");
    assert_eq!(total, Money::from_nanos(2_000 + 500_000_000));

    // The parallel fold agrees on every thread count.
    for threads in 1..=8 {
        let mut pass = DashboardPass::new(now(), [], ScanFilter::default());
        let ps = st
            .fold_blocking_threads(&mut pass, NonZeroUsize::new(threads).unwrap())
            .unwrap();
        assert_eq!(ps, s, "threads {threads}");
        let j = pass.finish("x").to_json();
        assert_eq!(j["total_nano_usd"], 500_002_000, "threads {threads}");
        assert_eq!(j["corrupted_lines"], 9, "threads {threads}");
    }
}

#[test]
fn overflowing_totals_are_flagged_and_identical_over_1_to_8_threads() {
    let tmp = tempfile::tempdir().unwrap();
    // 8 users × 1,200 records of $1,000,000 (the most one record may
    // carry): $9.6 billion, more than an i64 of nano-dollars holds.
    let max = 1_000_000_000_000_000i64;
    for u in 0..8 {
        let user = format!("u{u}");
        let lines: Vec<String> = (0..1_200).map(|_| line(&rec(&user, max))).collect();
        write_lines(&tmp.path().join(format!("costs_{user}.jsonl")), &lines);
    }
    let st = JsonlStorage::builder(tmp.path())
        .user("u0")
        .build()
        .unwrap();
    let mut seen = Vec::new();
    for threads in 1..=8 {
        let mut pass = DashboardPass::new(now(), [], ScanFilter::default());
        st.fold_blocking_threads(&mut pass, NonZeroUsize::new(threads).unwrap())
            .unwrap();
        let j = pass.finish("x").to_json();
        assert_eq!(j["totals_overflowed"], true, "threads {threads}");
        assert_eq!(j["total_calls"], 9_600);
        seen.push(j);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]));
    // The CLI says so and fails.
    let out = Command::cargo_bin("cost-tracker")
        .unwrap()
        .args(["--dashboard", "--team"])
        .env("COSTLAYER_DATA_DIR", tmp.path())
        .env("COSTLAYER_NOW", NOW)
        .env("NO_COLOR", "1")
        .env("COSTLAYER_USER", "u0")
        .env_remove("COSTLAYER_CONFIG")
        .current_dir(tmp.path())
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("capped"));
}

// ---------------------------------------------------------------- scale ---

#[cfg(unix)]
#[test]
fn three_thousand_user_files_under_a_256_descriptor_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    for u in 0..3_000 {
        let user = format!("user{u:04}");
        write_lines(
            &dir.join(format!("costs_{user}.jsonl")),
            &[line(&rec(&user, 3))],
        );
    }
    let bin = assert_cmd::cargo::cargo_bin("cost-tracker");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" --dashboard --team --json")
        .arg(&bin)
        .current_dir(tmp.path())
        .env("COSTLAYER_DATA_DIR", &dir)
        .env("COSTLAYER_NOW", NOW)
        .env("COSTLAYER_USER", "user0000")
        .env_remove("COSTLAYER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_calls"], 3_000);
    assert_eq!(v["total_nano_usd"], 9_000);
    assert_eq!(v["by_user"].as_object().unwrap().len(), 3_000);
}

// ------------------------------------------------------------------ csv ---

#[test]
fn csv_cells_with_every_risky_prefix_are_neutralised() {
    let prefixes = [
        "=", "+", "-", "@", "\t", "\r", "\n", " ", "\u{a0}", "\u{feff}", "\u{200b}", "\u{ff1d}",
        "\u{ff0b}", "\u{ff0d}", "\u{ff20}", "|",
    ];
    let mut out = Vec::new();
    let mut w = CsvWriter::new(&mut out).unwrap();
    for p in prefixes {
        let mut r = rec(&format!("{p}cmd|' /C calc'!A0"), 1);
        r.model = format!("{p}SUM(1+1)").into();
        r.team = Some(format!("{p}team").into());
        r.request_id = Some(format!("{p}id").into());
        w.write(&r).unwrap();
    }
    w.finish().unwrap();
    let mut rd = csv::ReaderBuilder::new().from_reader(&out[..]);
    let header = rd.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut rows = 0;
    for (row, p) in rd.records().zip(prefixes) {
        let row = row.unwrap();
        for c in ["user", "team", "model", "request_id"] {
            let cell = &row[col(c)];
            assert!(
                cell.starts_with('\'') && cell[1..].starts_with(p),
                "{c} {cell:?} for prefix {p:?}"
            );
        }
        rows += 1;
    }
    assert_eq!(rows, prefixes.len());
}

// ----------------------------------------------------- quarantine, legacy ---

#[test]
fn four_thousand_bad_lines_make_one_quarantine_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (0..4_001).map(|i| format!("{{bad {i}")).collect();
    lines.push(line(&rec("u", 1)));
    write_lines(&tmp.path().join("costs_u.jsonl"), &lines);
    let st = JsonlStorage::builder(tmp.path()).user("u").build().unwrap();
    for _ in 0..2 {
        let mut pass = DashboardPass::new(now(), [], ScanFilter::default());
        let s = st.fold_blocking(&mut pass).unwrap();
        assert_eq!(s.corrupt, 4_001);
    }
    let files: Vec<_> = std::fs::read_dir(st.quarantine_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 4_001, "each line once, however often read");
    assert_eq!(entries[10]["source"], "costs_u.jsonl");
    assert_eq!(entries[10]["line"], 11);
    assert_eq!(entries[10]["text"], "{bad 10");
}

#[tokio::test]
async fn legacy_entries_without_a_user_go_to_legacy_and_a_user_reset_keeps_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("costs.json"),
        r#"[{"ts": "2026-11-10T00:00:00Z", "model": "gpt-4o", "cost": 1},
            {"ts": "2026-11-10T00:00:00Z", "model": "gpt-4o", "cost": 2, "user": "bob"}]"#,
    )
    .unwrap();
    let alice = JsonlStorage::builder(tmp.path())
        .user("alice")
        .build()
        .unwrap();
    alice.append(&rec("alice", 5)).await.unwrap();
    let mut users = BTreeMap::new();
    alice
        .scan_blocking(&ScanFilter::default(), |i| {
            if let ScanItem::Record(r) = i {
                *users.entry(r.user).or_insert(0) += 1;
            }
        })
        .unwrap();
    assert_eq!(
        users,
        BTreeMap::from([("alice".into(), 1), ("bob".into(), 1), ("legacy".into(), 1)])
    );
    let named = JsonlStorage::builder(tmp.path())
        .user("alice")
        .legacy_user("seed-tool")
        .build()
        .unwrap();
    let mut legacy_users = Vec::new();
    named
        .scan_blocking(&ScanFilter::default(), |i| {
            if let ScanItem::Record(r) = i {
                legacy_users.push(r.user);
            }
        })
        .unwrap();
    assert!(legacy_users.iter().any(|u| u == "seed-tool"));

    let report = alice
        .reset(costlayer::ledger::ResetScope::User("alice".into()))
        .await
        .unwrap();
    assert_eq!(report.moved, ["costs_alice.jsonl"]);
    assert!(
        tmp.path().join("costs.json").is_file(),
        "other users' records stay"
    );
    let report = alice
        .reset(costlayer::ledger::ResetScope::All)
        .await
        .unwrap();
    assert_eq!(report.moved, ["costs.json"]);
}

#[test]
fn smtp_port_zero_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("costlayer.toml");
    std::fs::write(&cfg, "[smtp]\nhost = \"127.0.0.1\"\nport = 0\n").unwrap();
    let err = costlayer::config::Config::load(Some(&cfg))
        .unwrap_err()
        .to_string();
    assert!(err.contains("smtp.port"), "{err}");
    assert!(EmailSink::builder("127.0.0.1")
        .port(0)
        .from("a@example.com")
        .to("b@example.com")
        .build()
        .is_err());
}
