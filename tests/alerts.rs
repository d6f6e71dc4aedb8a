//! Alert sinks against real servers on 127.0.0.1: SMTP and webhook.
//!
//! The SMTP server is a minimal one written here with tokio (about 60 lines)
//! rather than a crate such as mailin-embedded: it adds no dependency, it
//! records exactly what the client sent (envelope and DATA), and it can be
//! told to refuse recipients, which is the failure path we need to test.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use costlayer::alert::{Alert, AlertSink, EmailSink, SinkError, WebhookFormat, WebhookSink};
use costlayer::budget::{Budget, Threshold};
use costlayer::config::{Config, SmtpTls};
use costlayer::ledger::{MemoryStorage, Storage};
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tracker::{AlertRetry, CostTracker};
use costlayer::{ChatRequest, ChatResponse, Message, Money, Usage};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use wiremock::matchers::{body_json, body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Debug, Clone, Default)]
struct Mail {
    from: String,
    rcpt: Vec<String>,
    data: String,
}

impl Mail {
    /// Header lines unfolded (long subjects are folded onto several lines).
    fn unfolded(&self) -> String {
        self.data.replace("\r\n ", " ").replace("\r\n\t", " ")
    }
}

/// Starts an SMTP server on 127.0.0.1; `refuse_rcpt` answers 550 to RCPT.
async fn smtp_server(refuse_rcpt: bool) -> (SocketAddr, Arc<Mutex<Vec<Mail>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
    let store = mails.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 localhost test ESMTP\r\n").await.unwrap();
                let mut mail = Mail::default();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_string();
                    let upper = cmd.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-localhost\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        mail.from = cmd[10..].trim().to_string();
                        b"250 OK\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        if refuse_rcpt {
                            b"550 5.1.1 mailbox unavailable\r\n"
                        } else {
                            mail.rcpt.push(cmd[8..].trim().to_string());
                            b"250 OK\r\n"
                        }
                    } else if upper == "DATA" {
                        w.write_all(b"354 go ahead\r\n").await.unwrap();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            mail.data.push_str(&line);
                        }
                        store.lock().unwrap().push(std::mem::take(&mut mail));
                        b"250 OK queued\r\n"
                    } else if upper == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (addr, mails)
}

fn prices() -> PriceTable {
    let mut t = PriceTable::empty("test");
    let one = Money::from_usd(1).unwrap();
    t.insert(ModelPrice::new(
        "test-model",
        "openai",
        Rates::new(one, one),
    ));
    t
}

fn call(tokens: u64) -> (ChatRequest, ChatResponse) {
    (
        ChatRequest::new("test-model").message(Message::user("hi")),
        ChatResponse {
            provider: "openai".into(),
            model: "test-model".into(),
            usage: Usage::new(tokens, 0),
            ..Default::default()
        },
    )
}

fn fast_retry() -> AlertRetry {
    AlertRetry {
        attempts: 2,
        backoff: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn email_is_delivered_to_a_real_smtp_server() {
    let (addr, mails) = smtp_server(false).await;
    // Built from the same settings every entry point reads.
    let env = |k: &str| {
        match k {
            "COSTLAYER_ALERT_EMAILS" => Some("oncall@example.com, cfo@example.com"),
            "COSTLAYER_ALERT_FROM" => Some("costlayer <alerts@example.com>"),
            "COSTLAYER_SMTP_HOST" => Some("127.0.0.1"),
            "COSTLAYER_SMTP_TLS" => Some("none"),
            "COSTLAYER_MONTHLY_BUDGET" => Some("0.01"),
            "COSTLAYER_TOTAL_BUDGET" => Some("none"),
            "COSTLAYER_USER" => Some("alice"),
            _ => None,
        }
        .map(str::to_owned)
    };
    let mut config = Config::load_with_env(None, env).unwrap();
    config.smtp.port = Some(addr.port());
    let email = EmailSink::from_config(&config)
        .unwrap()
        .expect("configured");
    let tracker = CostTracker::builder()
        .prices(prices())
        .user(config.user.clone())
        .budgets(config.budgets().unwrap())
        .sink(email)
        .alert_retry(fast_retry())
        .build()
        .unwrap();
    let (req, resp) = call(8_000);
    tracker.record(&req, &resp, None).await.unwrap();
    tracker.flush_alerts().await;
    assert!(
        tracker.delivery_failures().is_empty(),
        "{:?}",
        tracker.delivery_failures()
    );

    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.from, "<alerts@example.com>");
    assert_eq!(m.rcpt, ["<oncall@example.com>", "<cfo@example.com>"]);
    let data = m.unfolded();
    assert!(
        data.contains("Subject: [costlayer] WARNING: budget `monthly` reached 80% of its limit"),
        "{data}"
    );
    assert!(
        data.contains("To: oncall@example.com, cfo@example.com"),
        "{data}"
    );
    assert!(data.contains("Spent:     $0.008"), "{data}");
    assert!(data.contains("Limit:     $0.01"), "{data}");
    assert!(data.contains("User:      alice"), "{data}");
}

#[tokio::test]
async fn a_refusing_or_absent_smtp_server_is_logged_and_recorded_not_fatal() {
    let (addr, mails) = smtp_server(true).await;
    let refusing = EmailSink::builder("127.0.0.1")
        .port(addr.port())
        .tls(SmtpTls::None)
        .from("alerts@example.com")
        .to("nobody@example.com")
        .build()
        .unwrap();
    // A port nothing listens on: bind, read the port, close.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = EmailSink::builder("127.0.0.1")
        .port(closed)
        .tls(SmtpTls::None)
        .timeout(Duration::from_secs(5))
        .from("alerts@example.com")
        .to("oncall@example.com")
        .build()
        .unwrap();
    let storage = MemoryStorage::new();
    let tracker = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .prices(prices())
        .clock(costlayer::clock::ManualClock::new(
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 1, 5, 0, 0, 0).unwrap(),
        ))
        .budget(Budget::monthly(Money::from_nanos(10_000_000)).thresholds([Threshold::percent(80)]))
        .sink(refusing)
        .sink(down)
        .alert_retry(fast_retry())
        .build()
        .unwrap();
    let (req, resp) = call(9_000);
    let rec = tracker
        .record(&req, &resp, None)
        .await
        .expect("the call is not failed");
    tracker.flush_alerts().await;
    assert!(mails.lock().unwrap().is_empty());
    let failures = tracker.delivery_failures();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures
        .iter()
        .all(|f| f.sink == "email" && f.attempts == 2));
    assert!(
        failures
            .iter()
            .any(|f| f.error.contains("mailbox unavailable")),
        "{failures:?}"
    );
    assert!(storage
        .alert_fired("monthly:8000:2026-01#failed#email")
        .await
        .unwrap());
    assert_eq!(storage.records(), vec![rec], "nothing lost from the ledger");
}

#[test]
fn email_addresses_are_validated_at_construction() {
    let e = EmailSink::builder("smtp.example.com")
        .from("alerts@example.com")
        .to("oncall@example.com")
        .to("bad@@example")
        .build()
        .unwrap_err();
    assert!(matches!(&e, SinkError::InvalidAddress { address, .. } if address == "bad@@example"));
    let e = EmailSink::builder("smtp.example.com")
        .to("oncall@example.com")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("COSTLAYER_ALERT_FROM"), "{e}");
    let e = EmailSink::builder("smtp.example.com")
        .from("alerts@example.com")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("COSTLAYER_ALERT_EMAILS"), "{e}");
    let e = EmailSink::builder(" ")
        .from("alerts@example.com")
        .to("a@example.com")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("COSTLAYER_SMTP_HOST"), "{e}");
}

#[tokio::test]
async fn webhook_posts_the_alert_as_json() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/T0/secret"))
        .and(body_partial_json(serde_json::json!({
            "budget": "monthly",
            "kind": "threshold",
            "threshold": "80%",
            "spent": 8_000_000,
            "limit": 10_000_000,
            "spent_usd": "0.008000000",
            "severity": "warning",
            "key": "monthly:8000:2026-01",
        })))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let sink = WebhookSink::new(format!("{}/hooks/T0/secret", server.uri())).unwrap();
    let tracker = CostTracker::builder()
        .prices(prices())
        .clock(costlayer::clock::ManualClock::new(
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 1, 5, 0, 0, 0).unwrap(),
        ))
        .budget(Budget::monthly(Money::from_nanos(10_000_000)).thresholds([Threshold::percent(80)]))
        .sink(sink)
        .build()
        .unwrap();
    let (req, resp) = call(8_000);
    tracker.record(&req, &resp, None).await.unwrap();
    tracker.flush_alerts().await;
    assert!(tracker.delivery_failures().is_empty());
    server.verify().await;
}

#[tokio::test]
async fn webhook_slack_format_posts_only_text() {
    let server = MockServer::start().await;
    let alert = Alert::example();
    Mock::given(method("POST"))
        .and(body_json(serde_json::json!({ "text": alert.message })))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let sink = WebhookSink::new(server.uri())
        .unwrap()
        .format(WebhookFormat::Slack);
    sink.send(&alert).await.unwrap();
    server.verify().await;
}

#[tokio::test]
async fn webhook_500_is_retried_then_recorded_without_leaking_the_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .expect(3)
        .mount(&server)
        .await;
    let storage = MemoryStorage::new();
    let tracker = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .prices(prices())
        .budget(Budget::total(Money::from_nanos(10_000_000)))
        .sink(WebhookSink::new(format!("{}/services/very-secret-token", server.uri())).unwrap())
        .alert_retry(AlertRetry {
            attempts: 3,
            backoff: Duration::from_millis(5),
        })
        .build()
        .unwrap();
    let (req, resp) = call(8_000);
    tracker.record(&req, &resp, None).await.unwrap();
    tracker.flush_alerts().await;
    server.verify().await;
    let failures = tracker.delivery_failures();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].error.contains("HTTP 500"),
        "{}",
        failures[0].error
    );
    assert!(!failures[0].error.contains("very-secret-token"));
    assert!(storage
        .alert_fired("total:8000:all-time#failed#webhook")
        .await
        .unwrap());
    assert_eq!(storage.len(), 1);
}

#[test]
fn secrets_are_absent_from_debug_output() {
    let env = |k: &str| {
        match k {
            "COSTLAYER_SMTP_PASSWORD" => Some("pa55word-xyz"),
            "COSTLAYER_SMTP_USERNAME" => Some("mailer"),
            "COSTLAYER_SMTP_HOST" => Some("smtp.example.com"),
            "COSTLAYER_ALERT_EMAILS" => Some("a@example.com"),
            "COSTLAYER_ALERT_FROM" => Some("b@example.com"),
            "COSTLAYER_WEBHOOK_URL" => Some("https://hooks.example.com/services/tok-abc123"),
            _ => None,
        }
        .map(str::to_owned)
    };
    let config = Config::load_with_env(None, env).unwrap();
    let email = EmailSink::from_config(&config).unwrap().unwrap();
    let hook = WebhookSink::new("https://hooks.example.com/services/tok-abc123").unwrap();
    let tracker = CostTracker::builder_from_config(&config)
        .unwrap()
        .build()
        .unwrap();
    let builder = EmailSink::builder("h").credentials("u", "pa55word-xyz");
    for dbg in [
        format!("{config:?}"),
        format!("{email:?}"),
        format!("{hook:?}"),
        format!("{tracker:?}"),
        format!("{builder:?}"),
    ] {
        assert!(!dbg.contains("pa55word-xyz"), "{dbg}");
        assert!(!dbg.contains("tok-abc123"), "{dbg}");
    }
}
