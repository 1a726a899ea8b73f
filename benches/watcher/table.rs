//! The results table: one row per measured value, with its target and
//! whether it was met, printed as Markdown at the end of the run.

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    Met,
    Missed,
    Info,
    Skipped,
}

#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) bench: &'static str,
    pub(crate) metric: String,
    pub(crate) value: String,
    pub(crate) target: String,
    pub(crate) verdict: Verdict,
}

#[derive(Default)]
pub(crate) struct Table {
    pub(crate) rows: Vec<Row>,
}

impl Table {
    pub(crate) fn add(
        &mut self,
        bench: &'static str,
        metric: impl Into<String>,
        value: impl Into<String>,
    ) {
        self.push(bench, metric, value, "", Verdict::Info);
    }

    pub(crate) fn check(
        &mut self,
        bench: &'static str,
        metric: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) {
        let verdict = if met { Verdict::Met } else { Verdict::Missed };
        self.push(bench, metric, value, target, verdict);
    }

    pub(crate) fn push(
        &mut self,
        bench: &'static str,
        metric: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        verdict: Verdict,
    ) {
        let row = Row {
            bench,
            metric: metric.into(),
            value: value.into(),
            target: target.into(),
            verdict,
        };
        eprintln!("  {} | {} | {}", row.bench, row.metric, row.value);
        self.rows.push(row);
    }

    pub(crate) fn print(&self) {
        println!("| benchmark | metric | value | target | |");
        println!("|---|---|---|---|---|");
        for r in &self.rows {
            let verdict = match r.verdict {
                Verdict::Met => "met",
                Verdict::Missed => "**missed**",
                Verdict::Info => "",
                Verdict::Skipped => "skipped",
            };
            println!(
                "| {} | {} | {} | {} | {} |",
                r.bench, r.metric, r.value, r.target, verdict
            );
        }
    }
}
