//! The terminal dashboard of `cost-tracker --dashboard`, and its JSON form.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::alert::{DeliveryState, OutboxEntry};
use crate::Money;

use super::{Bucket, Projection, Summary};

/// One outbox entry in the dashboard's JSON.
fn alert_json(e: &OutboxEntry) -> Value {
    let a = &e.alert;
    json!({
        "key": e.key,
        "budget": a.budget,
        "threshold": a.threshold,
        "period": a.period,
        "fired_at": a.fired_at,
        "message": a.message,
        "state": e.state(),
        "sinks": e.sinks,
    })
}

/// One budget as the dashboard shows it: how much of the limit is spent.
///
/// A plain view, so the dashboard does not depend on how budgets are
/// configured or enforced.
///
/// ```
/// use costlayer::report::BudgetView;
/// use costlayer::Money;
///
/// let usd = |s: &str| s.parse::<Money>().unwrap();
/// let b = BudgetView::new("monthly", usd("200"), usd("170"));
/// assert_eq!(b.percent_bp(), 8_500);
/// assert_eq!(b.remaining(), usd("30"));
/// assert_eq!(b.status(), "warning"); // past the 80% alert threshold
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BudgetView {
    /// The budget's name (`monthly`, `total`, ...).
    pub name: String,
    /// The window, for display (`November 2026`, `all time`). Empty if none.
    pub window: String,
    /// The limit.
    pub limit: Money,
    /// Spent within the window and scope.
    pub spent: Money,
    /// The alert threshold, in basis points of the limit.
    pub alert_at_bp: i64,
}

impl BudgetView {
    /// A budget with the default alert threshold of 80%, no window label.
    pub fn new(name: impl Into<String>, limit: Money, spent: Money) -> Self {
        BudgetView {
            name: name.into(),
            window: String::new(),
            limit,
            spent,
            alert_at_bp: 8_000,
        }
    }

    /// Sets the window label. Defaults to none.
    pub fn window(mut self, window: impl Into<String>) -> Self {
        self.window = window.into();
        self
    }

    /// Sets the alert threshold in basis points (8000 = 80%). Defaults to 80%.
    pub fn alert_at_bp(mut self, bp: i64) -> Self {
        self.alert_at_bp = bp;
        self
    }

    /// Spent as a share of the limit, in basis points, rounded down (a zero
    /// limit counts as fully spent).
    pub fn percent_bp(&self) -> i64 {
        self.spent
            .basis_points_of(self.limit)
            .unwrap_or(if self.spent.is_negative() { 0 } else { 10_000 })
    }

    /// The limit minus the spend (negative when over budget).
    pub fn remaining(&self) -> Money {
        self.limit - self.spent
    }

    /// The alert amount: the limit times the threshold, rounded down.
    pub fn alert_amount(&self) -> Money {
        let n = i128::from(self.limit.nanos()) * i128::from(self.alert_at_bp) / 10_000;
        Money::from_nanos(n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// `"ok"`, `"warning"` (at or past the alert threshold) or `"exceeded"`
    /// (at or past the limit).
    pub fn status(&self) -> &'static str {
        let p = self.percent_bp();
        if p >= 10_000 {
            "exceeded"
        } else if p >= self.alert_at_bp {
            "warning"
        } else {
            "ok"
        }
    }
}

/// How to draw the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    width: usize,
    color: bool,
    verbose: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            width: 80,
            color: false,
            verbose: false,
        }
    }
}

impl RenderOptions {
    /// The narrowest layout drawn; narrower terminals get this width.
    pub const MIN_WIDTH: usize = 40;
    /// The widest layout drawn; wider terminals get this width.
    pub const MAX_WIDTH: usize = 160;

    /// Plain text, 80 columns, not verbose.
    pub fn new() -> Self {
        Self::default()
    }

    /// The terminal width, clamped to
    /// [`MIN_WIDTH`](Self::MIN_WIDTH)..=[`MAX_WIDTH`](Self::MAX_WIDTH).
    /// Defaults to 80.
    pub fn width(mut self, width: usize) -> Self {
        self.width = width.clamp(Self::MIN_WIDTH, Self::MAX_WIDTH);
        self
    }

    /// Whether to use ANSI colours. Defaults to `false`.
    pub fn color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    /// Whether to add the model, user, cache, projection and daily sections.
    /// Defaults to `false`.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }
}

/// Everything the dashboard shows: a [`Summary`], budget views, alert
/// recipients and where the data came from.
///
/// # Example
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use costlayer::report::{BudgetView, Dashboard, RenderOptions, Summary};
/// use costlayer::Money;
///
/// let now = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap();
/// let dash = Dashboard::new(Summary::new(now), "data/metadata")
///     .budget(BudgetView::new("monthly", Money::from_usd(200).unwrap(), Money::ZERO));
/// let text = dash.render(&RenderOptions::new());
/// assert!(text.contains("SUMMARY"));
/// assert!(text.contains("BUDGET STATUS"));
/// assert_eq!(dash.to_json()["total_calls"], 0);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Dashboard {
    /// The numbers.
    pub summary: Summary,
    /// The budgets, in display order.
    pub budgets: Vec<BudgetView>,
    /// Who receives e-mail alerts.
    pub recipients: Vec<String>,
    /// Where the ledger was read from.
    pub data_path: String,
    /// What the report covers (`user alice`, `team: every user`). Defaults to empty.
    pub scope: String,
    /// Hints shown under the summary (which other ledgers exist, a missing
    /// directory). Defaults to none.
    pub notes: Vec<String>,
    /// How many of the recipients an alert can reach, when known.
    pub reachable: Option<usize>,
    /// The project's first day: the banner shows which project month it is.
    pub project_start: Option<chrono::NaiveDate>,
    /// The alerts of this period and every undelivered one, from the
    /// alert outbox, oldest first. Defaults to none.
    pub alerts: Vec<OutboxEntry>,
}

impl Dashboard {
    /// A dashboard of `summary`, read from `data_path`, with no budgets and
    /// no recipients.
    pub fn new(summary: Summary, data_path: impl Into<String>) -> Self {
        Dashboard {
            summary,
            budgets: Vec::new(),
            recipients: Vec::new(),
            data_path: data_path.into(),
            scope: String::new(),
            notes: Vec::new(),
            reachable: None,
            project_start: None,
            alerts: Vec::new(),
        }
    }

    /// Adds a hint shown under the summary. Defaults to none.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Sets how many of the recipients an alert can reach (a well-formed
    /// address and a configured transport). Defaults to unknown.
    pub fn reachable(mut self, n: usize) -> Self {
        self.reachable = Some(n);
        self
    }

    /// Sets the project's first day, so the banner says which project month
    /// it is. Defaults to none.
    pub fn project_start(mut self, start: chrono::NaiveDate) -> Self {
        self.project_start = Some(start);
        self
    }

    /// The project month of `now`, counting from 1 on the start day (the
    /// month-1-2 window is months 1 and 2); `None` before the start or
    /// without one.
    pub fn project_month(&self) -> Option<u32> {
        use chrono::Datelike;
        let start = self.project_start?;
        let today = self.summary.now.date_naive();
        if today < start {
            return None;
        }
        let mut months =
            (today.year() - start.year()) * 12 + today.month() as i32 - start.month() as i32;
        if today.day() < start.day() {
            months -= 1;
        }
        u32::try_from(months + 1).ok()
    }

    /// Sets the alerts shown: of `entries` (an outbox's
    /// [`deliveries`](crate::ledger::Storage::deliveries)), those fired in
    /// the summary's calendar month and every one not yet delivered.
    pub fn alerts(mut self, entries: impl IntoIterator<Item = OutboxEntry>) -> Self {
        let month = self.summary.calendar.month(self.summary.now);
        self.alerts = entries
            .into_iter()
            .filter(|e| month.contains(e.alert.fired_at) || e.state() != DeliveryState::Delivered)
            .collect();
        self
    }

    /// Adds a budget. Defaults to none.
    pub fn budget(mut self, budget: BudgetView) -> Self {
        self.budgets.push(budget);
        self
    }

    /// Sets the e-mail recipients. Defaults to none.
    pub fn recipients<I, S>(mut self, recipients: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.recipients = recipients.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the scope label. Defaults to empty.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The machine-readable form (`cost-tracker --dashboard --json`).
    ///
    /// Money is in integer nano-dollars (`*_nano_usd`), shares in basis
    /// points (`*_bp`). Breakdowns (`by_provider`, `by_model`, `by_user`,
    /// `by_team`, `by_day`) are objects of `{calls, nano_usd}`.
    pub fn to_json(&self) -> Value {
        let s = &self.summary;
        let p = Projection::from_summary(s);
        let budgets: Vec<Value> = self
            .budgets
            .iter()
            .map(|b| {
                json!({
                    "name": b.name,
                    "window": b.window,
                    "limit_nano_usd": b.limit,
                    "spent_nano_usd": b.spent,
                    "remaining_nano_usd": b.remaining(),
                    "percent_bp": b.percent_bp(),
                    "alert_at_bp": b.alert_at_bp,
                    "alert_nano_usd": b.alert_amount(),
                    "status": b.status(),
                })
            })
            .collect();
        let by_day: Map<String, Value> = s
            .by_day
            .iter()
            .map(|(d, b)| (d.to_string(), json!(b)))
            .collect();
        json!({
            "now": s.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "time_zone": s.calendar.name(),
            "month": s.calendar.month(s.now).label,
            "data_path": self.data_path,
            "scope": self.scope,
            "total_calls": s.total.calls,
            "total_nano_usd": s.total.nano_usd,
            "month_calls": s.month.calls,
            "month_nano_usd": s.month.nano_usd,
            "last_7_days_nano_usd": s.last_7_days.nano_usd,
            "by_provider": s.by_provider,
            "by_model": s.by_model,
            "by_user": s.by_user,
            "by_team": s.by_team,
            "by_day": by_day,
            "online": s.online,
            "batch": s.batch,
            "cache_hits": s.cache_hits,
            "saved_nano_usd": s.saved_nano_usd,
            "unpriced_calls": s.unpriced_calls,
            "unpriced_models": s.unpriced_models,
            "incomplete": s.incomplete,
            "estimated": s.estimated,
            "usage": s.usage,
            "corrupted_lines": s.corrupted_lines,
            "totals_overflowed": s.totals_overflowed,
            "corrupt_sources": s.corrupt_sources,
            "quarantined_to": s.quarantined_to,
            "budgets": budgets,
            "recipients": self.recipients,
            "reachable_recipients": self.reachable,
            "project_start": self.project_start.map(|d| d.to_string()),
            "project_month": self.project_month(),
            "notes": self.notes,
            "alerts": self.alerts.iter().map(alert_json).collect::<Vec<_>>(),
            "projection": {
                "month_to_date_nano_usd": p.month_to_date,
                "linear_nano_usd": p.linear,
                "linear_label": Projection::LINEAR_LABEL,
                "seven_day_nano_usd": p.seven_day,
                "seven_day_label": Projection::SEVEN_DAY_LABEL,
                "daily_rate_7d_nano_usd": p.daily_rate_7d,
            },
        })
    }

    /// Draws the dashboard as text.
    ///
    /// Sections: a banner (data path, budgets and their alert thresholds,
    /// recipients), SUMMARY, BUDGET STATUS (a progress bar per budget,
    /// green below its alert threshold, yellow past it, red past the limit),
    /// EMAIL ALERTS and PROVIDER BREAKDOWN; verbose adds MODEL BREAKDOWN,
    /// USERS, CACHE SAVINGS, PROJECTION and DAILY SPEND (30 days). Lines
    /// never exceed the width.
    ///
    /// Every string that came from a ledger or a provider (providers,
    /// models, users, teams, file names) is passed through
    /// [`terminal_safe`](super::terminal_safe) first: the text holds no
    /// control character but its line breaks (and, with colour, its own
    /// SGR sequences).
    pub fn render(&self, opts: &RenderOptions) -> String {
        self.terminal_copy().render_safe(opts)
    }

    /// A copy whose strings are all [`terminal_safe`](super::terminal_safe)
    /// (breakdown keys that become equal once escaped are added together).
    fn terminal_copy(&self) -> Dashboard {
        use super::terminal_safe as t;
        use std::collections::BTreeMap;
        let keys = |m: &BTreeMap<String, Bucket>| {
            let mut out: BTreeMap<String, Bucket> = BTreeMap::new();
            for (k, b) in m {
                out.entry(t(k).into_owned()).or_default().merge(*b);
            }
            out
        };
        let mut d = self.clone();
        let s = &mut d.summary;
        s.by_provider = keys(&self.summary.by_provider);
        s.by_model = keys(&self.summary.by_model);
        s.by_user = keys(&self.summary.by_user);
        s.by_team = keys(&self.summary.by_team);
        s.unpriced_models =
            self.summary
                .unpriced_models
                .iter()
                .fold(BTreeMap::new(), |mut m, (k, n)| {
                    *m.entry(t(k).into_owned()).or_default() += n;
                    m
                });
        s.corrupt_sources = self
            .summary
            .corrupt_sources
            .iter()
            .map(|x| t(x).into_owned())
            .collect();
        s.quarantined_to = self
            .summary
            .quarantined_to
            .iter()
            .map(|p| t(&p.display().to_string()).into_owned().into())
            .collect();
        d.data_path = t(&self.data_path).into_owned();
        d.scope = t(&self.scope).into_owned();
        d.recipients = self.recipients.iter().map(|r| t(r).into_owned()).collect();
        for b in &mut d.budgets {
            b.name = t(&b.name).into_owned();
            b.window = t(&b.window).into_owned();
        }
        d
    }

    fn render_safe(&self, opts: &RenderOptions) -> String {
        let mut out = Out {
            buf: String::new(),
            color: opts.color,
            width: opts
                .width
                .clamp(RenderOptions::MIN_WIDTH, RenderOptions::MAX_WIDTH),
        };
        self.banner(&mut out);
        self.summary_section(&mut out);
        self.budget_section(&mut out);
        self.alerts_section(&mut out);
        out.heading("PROVIDER BREAKDOWN");
        self.breakdown(&mut out, "Provider", &self.summary.by_provider, false);
        if opts.verbose {
            out.heading("MODEL BREAKDOWN");
            self.breakdown(&mut out, "Model", &self.summary.by_model, true);
            out.heading("USERS");
            self.breakdown(&mut out, "User", &self.summary.by_user, false);
            if !self.summary.by_team.is_empty() {
                out.blank();
                self.breakdown(&mut out, "Team", &self.summary.by_team, false);
            }
            self.cache_section(&mut out);
            self.projection_section(&mut out);
            self.daily_section(&mut out);
        }
        out.buf
    }

    fn banner(&self, out: &mut Out) {
        out.line(&out.paint("Cost tracker initialised", BOLD));
        let scope = if self.scope.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.scope)
        };
        out.field("Data", &format!("{}{scope}", self.data_path));
        if let Some(start) = self.project_start {
            let month = match self.project_month() {
                Some(m) => format!("{m} (started {start})"),
                None => format!("not started (starts {start})"),
            };
            out.field("Project month", &month);
        }
        if self.budgets.is_empty() {
            out.field("Budgets", "none (set --monthly-budget / --total-budget)");
        }
        for b in &self.budgets {
            out.field(
                "Budget",
                &format!(
                    "{} {} (alert at {} = {})",
                    b.name,
                    b.limit,
                    pct(b.alert_at_bp),
                    b.alert_amount()
                ),
            );
        }
        out.field("Email alerts", &self.recipient_count());
    }

    /// `2/4 recipients reachable` (the list is under EMAIL ALERTS), or the
    /// list itself when reachability is unknown.
    fn recipient_count(&self) -> String {
        match self.reachable {
            Some(n) if !self.recipients.is_empty() => {
                format!("{n}/{} recipients reachable", self.recipients.len())
            }
            _ => self.recipient_list(),
        }
    }

    fn recipient_list(&self) -> String {
        if self.recipients.is_empty() {
            "none configured".to_owned()
        } else {
            self.recipients.join(", ")
        }
    }

    fn summary_section(&self, out: &mut Out) {
        let s = &self.summary;
        out.heading("SUMMARY");
        if s.totals_overflowed {
            out.field(
                "ERROR",
                &out.paint(
                    "the ledger's costs add up to more than $9,223,372,036.85, the largest \
                     total this version can hold: the totals below are capped and wrong. Check \
                     the ledger for implausible records",
                    RED,
                ),
            );
        }
        out.field("Total calls", &count(s.total.calls));
        out.field("Total cost", &s.total.nano_usd.to_string());
        out.field(
            "Monthly cost",
            &format!(
                "{} ({} to date)",
                s.month.nano_usd,
                s.calendar.month_name(s.now)
            ),
        );
        if s.total.calls == 0 {
            let who = if self.scope.is_empty() {
                String::new()
            } else {
                format!(" for {}", self.scope)
            };
            out.line(&format!("  No calls recorded{who} in {}", self.data_path));
        }
        for note in &self.notes {
            out.line(&format!("  {note}"));
        }
        if s.unpriced_calls > 0 {
            let models: Vec<&str> = s.unpriced_models.keys().map(String::as_str).collect();
            out.field(
                "Unpriced calls",
                &out.paint(
                    &format!(
                        "{} (no price for {}; counted at $0)",
                        count(s.unpriced_calls),
                        models.join(", ")
                    ),
                    YELLOW,
                ),
            );
        }
        for (label, b, why) in [
            (
                "Incomplete costs",
                &s.incomplete,
                "a billed dimension had no price: at least this",
            ),
            ("Estimated costs", &s.estimated, "the usage was estimated"),
        ] {
            if b.calls > 0 {
                out.field(
                    label,
                    &out.paint(
                        &format!("{} in {} calls ({why})", b.nano_usd, count(b.calls)),
                        YELLOW,
                    ),
                );
            }
        }
        if s.corrupted_lines > 0 {
            let dest = if s.quarantined_to.is_empty() {
                "not quarantined".to_owned()
            } else {
                let q: Vec<String> = s
                    .quarantined_to
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                format!("quarantined in {}", q.join(", "))
            };
            out.field(
                "Corrupted lines",
                &out.paint(
                    &format!("{} skipped, {dest}", count(s.corrupted_lines)),
                    YELLOW,
                ),
            );
        }
    }

    fn budget_section(&self, out: &mut Out) {
        out.heading("BUDGET STATUS");
        if self.budgets.is_empty() {
            out.line("  No budgets configured.");
            return;
        }
        let bar_len = out.width.saturating_sub(14).min(50);
        for (i, b) in self.budgets.iter().enumerate() {
            if i > 0 {
                out.blank();
            }
            let window = if b.window.is_empty() {
                String::new()
            } else {
                format!(" ({})", b.window)
            };
            out.line(&format!("  {}{window}", out.paint(&b.name, BOLD)));
            let remaining = b.remaining();
            let rem = if remaining.is_negative() {
                format!("over by {}", -remaining)
            } else {
                format!("{remaining} remaining")
            };
            out.line(&format!("  Spent {} of {}, {rem}", b.spent, b.limit));
            let color = match b.status() {
                "exceeded" => RED,
                "warning" => YELLOW,
                _ => GREEN,
            };
            let bar = bar(b.percent_bp().clamp(0, 10_000), 10_000, bar_len, true);
            out.line(&format!(
                "  [{}] {:>7}",
                out.paint(&bar, color),
                pct(b.percent_bp())
            ));
        }
    }

    fn alerts_section(&self, out: &mut Out) {
        out.heading("EMAIL ALERTS");
        out.field("Recipients", &self.recipient_list());
        for e in &self.alerts {
            let a = &e.alert;
            let what = format!("{} {} ({})", a.budget, a.threshold, a.period);
            for (sink, d) in &e.sinks {
                let via = match &d.target {
                    Some(t) => format!("{sink} to {t}"),
                    None => sink.clone(),
                };
                let (label, text, color) = match d.state {
                    DeliveryState::Delivered => (
                        "Sent",
                        format!(
                            "{what} via {via}{}",
                            d.delivered_at
                                .map(|t| format!(" at {}", t.format("%Y-%m-%d %H:%M UTC")))
                                .unwrap_or_default()
                        ),
                        GREEN,
                    ),
                    DeliveryState::Failed => (
                        "Failed",
                        format!(
                            "{what} via {via}: {} attempt{}, last error: {}{}",
                            d.attempts,
                            if d.attempts == 1 { "" } else { "s" },
                            d.last_error.as_deref().unwrap_or("unknown"),
                            if d.attempts < OutboxEntry::MAX_ATTEMPTS {
                                "; retried by the next run"
                            } else {
                                "; given up"
                            }
                        ),
                        RED,
                    ),
                    _ => ("Pending", format!("{what} via {via}"), YELLOW),
                };
                let painted = out.paint(&text, color);
                out.field(label, &painted);
            }
        }
    }

    fn breakdown(
        &self,
        out: &mut Out,
        name: &str,
        map: &std::collections::BTreeMap<String, Bucket>,
        avg: bool,
    ) {
        if map.is_empty() {
            out.line("  No calls.");
            return;
        }
        let total = self.summary.total.nano_usd;
        let mut rows: Vec<(&String, &Bucket)> = map.iter().collect();
        rows.sort_by(|a, b| b.1.nano_usd.cmp(&a.1.nano_usd).then_with(|| a.0.cmp(b.0)));
        let mut header = vec![
            name.to_owned(),
            "Calls".into(),
            "Cost".into(),
            "% of total".into(),
        ];
        if avg {
            header.push("Avg/call".into());
        }
        let amounts: Vec<Money> = rows.iter().map(|(_, b)| b.nano_usd).collect();
        let shares = shares(&amounts, total);
        let body: Vec<Vec<String>> = rows
            .iter()
            .zip(shares)
            .map(|((k, b), share)| {
                let mut r = vec![(*k).clone(), count(b.calls), b.nano_usd.to_string(), share];
                if avg {
                    let a = if b.calls == 0 {
                        Money::ZERO
                    } else {
                        Money::from_nanos(b.nano_usd.nanos() / b.calls as i64)
                    };
                    r.push(a.to_string());
                }
                r
            })
            .collect();
        out.table(&header, &body);
    }

    fn cache_section(&self, out: &mut Out) {
        let s = &self.summary;
        out.heading("CACHE SAVINGS");
        let share = if s.total.calls == 0 {
            0
        } else {
            (i128::from(s.cache_hits) * 10_000 / i128::from(s.total.calls)) as i64
        };
        out.field(
            "Cache hits",
            &format!(
                "{} of {} calls ({})",
                count(s.cache_hits),
                count(s.total.calls),
                pct(share)
            ),
        );
        out.field("Saved", &out.paint(&s.saved_nano_usd.to_string(), GREEN));
        out.field(
            "Online",
            &format!("{} in {}", s.online.nano_usd, calls(s.online.calls)),
        );
        out.field(
            "Batch",
            &format!("{} in {}", s.batch.nano_usd, calls(s.batch.calls)),
        );
    }

    fn projection_section(&self, out: &mut Out) {
        let p = Projection::from_summary(&self.summary);
        out.heading("PROJECTION");
        out.field(
            "Month to date",
            &format!(
                "{} ({} of {} elapsed)",
                p.month_to_date,
                pct(p.elapsed_bp),
                self.summary
                    .calendar
                    .local_date(self.summary.now)
                    .format("%B")
            ),
        );
        out.field(
            "End of month",
            &format!("{} ({})", approx(p.linear), Projection::LINEAR_LABEL),
        );
        out.field(
            "End of month",
            &format!(
                "{} ({}, {}/day)",
                approx(p.seven_day),
                Projection::SEVEN_DAY_LABEL,
                approx(p.daily_rate_7d)
            ),
        );
    }

    fn daily_section(&self, out: &mut Out) {
        out.heading(&format!(
            "DAILY SPEND (last 30 days, {})",
            self.summary.calendar
        ));
        let days = self.summary.daily(30);
        let max = days
            .iter()
            .map(|(_, b)| b.nano_usd)
            .max()
            .unwrap_or(Money::ZERO);
        let labels: Vec<String> = days
            .iter()
            .map(|(_, b)| format!("{:.2}", b.nano_usd))
            .collect();
        let label_w = labels.iter().map(|l| l.chars().count()).max().unwrap_or(5);
        // "  MM-DD │" + bar + " " + label (rounded to cents: the chart is a picture;
        // the exact amounts are in the tables and in --json)
        let bar_len = out.width.saturating_sub(2 + 5 + 2 + 1 + label_w).max(5);
        let mut i = 0;
        while i < days.len() {
            // A run of two or more days without spend is one line.
            let run = days[i..]
                .iter()
                .take_while(|(_, b)| b.nano_usd.is_zero())
                .count();
            if run >= 2 {
                let (first, last) = (days[i].0, days[i + run - 1].0);
                out.line(&format!(
                    "  {} │ … {}: no spend ({run} days)",
                    first.format("%m-%d"),
                    last.format("%m-%d")
                ));
                i += run;
                continue;
            }
            let ((d, b), label) = (&days[i], &labels[i]);
            i += 1;
            let n = if max.nanos() <= 0 {
                0
            } else {
                b.nano_usd.nanos().max(0)
            };
            let bar = bar(n, max.nanos().max(1), bar_len, false);
            let pad = " ".repeat(bar_len - bar.chars().count());
            out.line(&format!(
                "  {} │{}{pad} {label:>label_w$}",
                d.format("%m-%d"),
                out.paint(&bar, CYAN)
            ));
        }
    }
}

/// Spaces between table columns.
const GAP: usize = 3;

const BOLD: &str = "1";
const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const CYAN: &str = "36";

struct Out {
    buf: String,
    color: bool,
    width: usize,
}

impl Out {
    fn paint(&self, s: &str, code: &str) -> String {
        if self.color && !s.is_empty() {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    fn line(&mut self, s: &str) {
        self.buf.push_str(s.trim_end());
        self.buf.push('\n');
    }

    fn blank(&mut self) {
        self.buf.push('\n');
    }

    fn heading(&mut self, title: &str) {
        let rule = "=".repeat(self.width);
        self.blank();
        self.line(&rule);
        let t = self.paint(title, BOLD);
        self.line(&t);
        self.line(&rule);
    }

    fn field(&mut self, name: &str, value: &str) {
        let label = format!("{name}:");
        let prefix = format!("  {label:<16} ");
        let room = self.width.saturating_sub(prefix.chars().count()).max(10);
        // Long values (paths, recipient lists) wrap under the value column.
        let plain_len = visible_len(value);
        if plain_len <= room || value.contains('\x1b') {
            self.line(&format!("{prefix}{value}"));
            return;
        }
        let indent = " ".repeat(prefix.chars().count());
        let chars: Vec<char> = value.chars().collect();
        for (i, chunk) in chars.chunks(room).enumerate() {
            let chunk: String = chunk.iter().collect();
            let lead = if i == 0 { &prefix } else { &indent };
            self.line(&format!("{lead}{chunk}"));
        }
    }

    fn table(&mut self, header: &[String], rows: &[Vec<String>]) {
        let mut cols = header.len();
        let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        // Too wide: drop optional trailing columns (beyond name, calls, cost,
        // share), then shrink the first (name) column, never below 8.
        let others =
            |w: &[usize], cols: usize| w[1..cols].iter().sum::<usize>() + GAP * (cols - 1) + 2;
        while cols > 4 && others(&w, cols) + w[0].min(8) > self.width {
            cols -= 1;
        }
        w.truncate(cols);
        let room = self.width.saturating_sub(others(&w, cols)).max(8);
        w[0] = w[0].min(room);
        let header = &header[..cols];
        let fmt_row = |r: &[String]| -> String {
            let mut s = String::from("  ");
            for (i, c) in r.iter().take(cols).enumerate() {
                if i == 0 {
                    let _ = write!(s, "{:<width$}", truncate(c, w[0]), width = w[0]);
                } else {
                    let _ = write!(s, "{:GAP$}{:>width$}", "", c, width = w[i]);
                }
            }
            s
        };
        let h = fmt_row(header);
        let h = self.paint(&h, BOLD);
        self.line(&h);
        let sep: usize = w.iter().sum::<usize>() + GAP * (cols - 1);
        self.line(&format!("  {}", "-".repeat(sep)));
        for r in rows {
            let line = fmt_row(r);
            self.line(&line);
        }
    }
}

fn visible_len(s: &str) -> usize {
    s.chars().count()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A bar of `len` cells for `n` of `max`, in eighths of a cell; `track`
/// fills the rest with light shade.
fn bar(n: i64, max: i64, len: usize, track: bool) -> String {
    const PARTIAL: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = if max <= 0 {
        0
    } else {
        (i128::from(n.clamp(0, max)) * (len as i128) * 8 / i128::from(max)) as usize
    };
    let full = eighths / 8;
    let part = eighths % 8;
    let mut s: String = "█".repeat(full);
    let mut used = full;
    if part > 0 && used < len {
        s.push(PARTIAL[part]);
        used += 1;
    }
    if track {
        s.push_str(&"░".repeat(len - used));
    }
    s
}

/// Each amount's share of `total` as a percent, rounded by largest
/// remainder so the column sums to exactly 100%: two decimals, or three
/// when a non-zero share would otherwise show as `0.00%`; a share still
/// too small to show is `<0.001%`. Negative amounts (or a total that is
/// not positive) fall back to plain rounded-down shares.
fn shares(amounts: &[Money], total: Money) -> Vec<String> {
    let sum: i128 = amounts.iter().map(|m| i128::from(m.nanos())).sum();
    let exact = total.nanos() > 0
        && sum == i128::from(total.nanos())
        && amounts.iter().all(|m| !m.is_negative());
    if !exact {
        return amounts
            .iter()
            .map(|m| {
                let bp = if total.nanos() == 0 {
                    0
                } else {
                    (i128::from(m.nanos()) * 10_000 / i128::from(total.nanos())) as i64
                };
                pct(bp)
            })
            .collect();
    }
    let round = |scale: i128| largest_remainder(amounts, sum, scale);
    let two = round(10_000);
    let hidden = amounts
        .iter()
        .zip(&two)
        .any(|(m, u)| !m.is_zero() && *u == 0);
    if !hidden {
        return two.into_iter().map(|u| pct(u as i64)).collect();
    }
    round(100_000)
        .into_iter()
        .zip(amounts)
        .map(|(u, m)| {
            if u == 0 && !m.is_zero() {
                "<0.001%".to_owned()
            } else {
                format!("{}.{:03}%", u / 1000, u % 1000)
            }
        })
        .collect()
}

/// `amounts` (non-negative, summing to `sum` > 0) as parts of `scale`,
/// rounded down and the leftover units given to the largest remainders
/// (ties to the earlier row), so the parts sum to exactly `scale`.
fn largest_remainder(amounts: &[Money], sum: i128, scale: i128) -> Vec<i128> {
    let mut parts: Vec<(i128, i128)> = amounts
        .iter()
        .map(|m| {
            let n = i128::from(m.nanos()) * scale;
            (n / sum, n % sum)
        })
        .collect();
    let given: i128 = parts.iter().map(|p| p.0).sum();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| parts[b].1.cmp(&parts[a].1).then(a.cmp(&b)));
    for &i in order
        .iter()
        .take(usize::try_from(scale - given).unwrap_or(0))
    {
        parts[i].0 += 1;
    }
    parts.into_iter().map(|p| p.0).collect()
}

/// An amount for an estimate: cents, or two significant digits below ten
/// cents (so $0.0021/day does not print as $0.00/day).
fn approx(m: Money) -> String {
    let abs = m.nanos().unsigned_abs();
    let mut digits = 2;
    while digits < 9 && abs > 0 && abs < 10u64.pow(10 - digits as u32) {
        digits += 1;
    }
    format!("{m:.digits$}")
}

/// Basis points as a percent with two decimals: 8000 -> `80.00%`.
fn pct(bp: i64) -> String {
    let sign = if bp < 0 { "-" } else { "" };
    let a = bp.unsigned_abs();
    format!("{sign}{}.{:02}%", a / 100, a % 100)
}

/// `1 call`, `2 calls`.
fn calls(n: u64) -> String {
    format!("{} call{}", count(n), if n == 1 { "" } else { "s" })
}

/// A count with thousands separators: 1234567 -> `1,234,567`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ledger::CostRecord;
    use crate::Usage;
    use chrono::{TimeZone, Utc};

    fn usd(s: &str) -> Money {
        s.parse().unwrap()
    }

    fn sample() -> Dashboard {
        let now = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap();
        let mut s = Summary::new(now);
        for (p, m, c) in [
            ("openai", "gpt-4o", "3.00"),
            ("anthropic", "claude-sonnet-4-5", "1.00"),
            ("openai", "gpt-4o", "0.0000005"),
        ] {
            let mut r = CostRecord::new("alice", p, m, Usage::new(10, 1));
            r.ts = Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap();
            r.nano_usd = Some(usd(c));
            s.add_record(&r);
        }
        Dashboard::new(s, "/tmp/ledger")
            .budget(BudgetView::new("monthly", usd("5"), usd("4.0000005")))
            .budget(BudgetView::new("total", usd("2"), usd("4.0000005")))
            .recipients(["ops@example.com"])
    }

    #[test]
    fn helpers_format_exactly() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(pct(8_000), "80.00%");
        assert_eq!(pct(5), "0.05%");
        assert_eq!(pct(-150), "-1.50%");
        assert_eq!(bar(5_000, 10_000, 10, true), "█████░░░░░");
        assert_eq!(bar(10_000, 10_000, 4, true), "████");
        assert_eq!(bar(1, 16, 1, false), "");
        assert_eq!(bar(1, 8, 1, false), "▏");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn plain_render_has_sections_and_exact_numbers() {
        let d = sample();
        let text = d.render(&RenderOptions::new());
        for s in [
            "SUMMARY",
            "BUDGET STATUS",
            "EMAIL ALERTS",
            "PROVIDER BREAKDOWN",
            "ops@example.com",
        ] {
            assert!(text.contains(s), "{s} missing:\n{text}");
        }
        assert!(!text.contains("MODEL BREAKDOWN"));
        assert!(!text.contains('\x1b'));
        assert!(text.contains("$4.0000005"), "{text}");
        // openai: 3.0000005 / 4.0000005 = 75.0000...% -> 75.00%
        assert!(text.contains("75.00%"), "{text}");
        assert!(text.contains("80.00%")); // monthly 4.0000005 / 5
        assert!(text.contains("over by $2.0000005"), "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "too wide: {line}");
        }
    }

    #[test]
    fn verbose_color_and_width() {
        let d = sample();
        let text = d.render(&RenderOptions::new().verbose(true).color(true).width(50));
        for s in [
            "MODEL BREAKDOWN",
            "USERS",
            "CACHE SAVINGS",
            "PROJECTION",
            "DAILY SPEND",
        ] {
            assert!(text.contains(s), "{s} missing");
        }
        // Red for the exceeded total budget, yellow for the monthly one at 80%.
        assert!(text.contains("\x1b[31m█"));
        assert!(text.contains("\x1b[33m█"));
        let plain = d.render(&RenderOptions::new().verbose(true).width(50));
        for line in plain.lines() {
            assert!(line.chars().count() <= 50, "too wide: {line}");
        }
        assert_eq!(plain.matches("11-15 │").count(), 1);
    }

    #[test]
    fn json_has_the_contract_fields() {
        let v = sample().to_json();
        assert_eq!(v["total_calls"], 3);
        assert_eq!(v["total_nano_usd"], 4_000_000_500i64);
        assert_eq!(v["month_nano_usd"], 4_000_000_500i64);
        assert_eq!(v["by_provider"]["openai"]["calls"], 2);
        assert_eq!(v["by_provider"]["openai"]["nano_usd"], 3_000_000_500i64);
        assert_eq!(
            v["by_model"]["claude-sonnet-4-5"]["nano_usd"],
            1_000_000_000i64
        );
        assert_eq!(v["by_user"]["alice"]["calls"], 3);
        assert_eq!(v["budgets"][1]["status"], "exceeded");
        assert_eq!(v["budgets"][0]["percent_bp"], 8_000);
        assert_eq!(v["corrupted_lines"], 0);
        assert_eq!(v["unpriced_calls"], 0);
    }
}
