//! `kuma check`: validates every campaign and shows what a broadcaster must see
//! before air — languages, nodes, questions, and the next broadcasts in words.

use std::process::ExitCode;

use chrono::Utc;

use super::Env;
use crate::campaign::{Campaign, NodeKind, format_duration, load_folder};
use crate::schedule::{Poll, describe};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these campaign ids (default: every campaign of the folder).
    ids: Vec<String>,
    /// Show the schedule as seen at this time instead of now (YYYY-MM-DD[THH:MM]).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

pub fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let set = load_folder(&env.campaigns);
    let wanted = |id: &str| args.ids.is_empty() || args.ids.iter().any(|w| w == id);
    for id in &args.ids {
        let file = env.campaigns.join(format!("{id}.toml"));
        if !set.files.contains(&file) {
            anyhow::bail!("unknown campaign `{id}`: no file {}", file.display());
        }
    }
    let mut bad = 0;
    let mut good = 0;
    let mut settings = None;
    for file in set
        .files
        .iter()
        .filter(|f| f.file_stem().and_then(|s| s.to_str()).is_some_and(wanted))
    {
        let problems: Vec<_> = set.problems_of(file).collect();
        let id = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        match set.get(id) {
            Some(c) if problems.is_empty() => {
                let now = match &args.at {
                    Some(t) => super::time_arg(t, c, "--at")?,
                    None => Utc::now(),
                };
                print!("{}", summary(c, now));
                if !c.callback_numbers.is_empty() {
                    let config = settings.get_or_insert_with(serve_settings);
                    for w in config.iter().flat_map(crate::serve::callback_warnings) {
                        println!("  warning: {w}");
                    }
                }
                // Every recording through the prompt pipeline: each file's problems
                // with its path; an unusable recording makes the campaign bad.
                let (audio_line, audio_problems) = super::audio::check_campaign(env, c);
                println!("{audio_line}");
                for p in &audio_problems {
                    eprintln!("{p}");
                }
                if audio_problems
                    .iter()
                    .any(|p| p.severity == crate::audio::Severity::Error)
                {
                    bad += 1;
                } else {
                    good += 1;
                }
            }
            _ => {
                println!(
                    "{id}: {} problem{}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                );
                for p in problems {
                    eprintln!("{p}");
                }
                bad += 1;
            }
        }
        println!();
    }
    // Problems of the folder itself (unreadable, empty).
    for p in set.problems.iter().filter(|p| !set.files.contains(&p.file)) {
        eprintln!("{p}");
        bad += 1;
    }
    println!(
        "{good} campaign{} ok, {bad} with problems",
        if good == 1 { "" } else { "s" }
    );
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The station's settings, for the call-back warnings; `None` when they do not
/// load (`kuma serve` says why).
fn serve_settings() -> Option<crate::serve::ServeConfig> {
    super::station_settings().ok()
}

/// What `kuma check` prints about a valid campaign.
pub fn summary(c: &Campaign, now: chrono::DateTime<Utc>) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("{}: {} — ok", c.id, c.title));
    line(format!("  languages: {}", c.languages.join(", ")));
    if !c.numbers.is_empty() {
        line(format!("  numbers:   {}", c.numbers.join(", ")));
    }
    if !c.callback_numbers.is_empty() {
        line(format!(
            "  call-back: {} (refused and called back)",
            c.callback_numbers.join(", ")
        ));
    }
    line(format!(
        "  prompts:   up to {} each (max_prompt)",
        format_duration(c.max_prompt)
    ));
    if let Some(m) = c.max_call {
        line(format!(
            "  calls:     up to {} (max_call)",
            format_duration(m)
        ));
    }
    if let Some(r) = &c.replay {
        let step = format_duration(r.step);
        line(format!(
            "  replay:    during messages {} back {step}, {} forward {step}, {} pause/resume, {} skip",
            r.back, r.forward, r.pause, r.skip
        ));
    }
    line(format!(
        "  nodes ({}), starting at `{}`:",
        c.nodes.len(),
        c.start
    ));
    for n in &c.nodes {
        let to = match &n.kind {
            NodeKind::Language { next } | NodeKind::Message { next } => format!("-> {next}"),
            NodeKind::Menu { options, on_fail } => {
                let o: Vec<String> = options
                    .iter()
                    .map(|o| format!("{}:{}", o.digit, o.target))
                    .collect();
                format!(
                    "{}{}",
                    o.join(" "),
                    on_fail
                        .as_ref()
                        .map(|f| format!(", on fail -> {f}"))
                        .unwrap_or_default()
                )
            }
            NodeKind::Question { next, .. } => format!("-> {next}"),
            NodeKind::Record { max, next } => format!("up to {}, -> {next}", format_duration(*max)),
            NodeKind::Transfer { to, on_fail } => {
                format!(
                    "to {to}{}",
                    on_fail
                        .as_ref()
                        .map(|f| format!(", on fail -> {f}"))
                        .unwrap_or_default()
                )
            }
            NodeKind::Hangup => String::new(),
        };
        line(
            format!("    {:<22} {:<9} {}", n.id, n.kind.name(), to)
                .trim_end()
                .to_string(),
        );
    }
    let questions: Vec<_> = c.questions().collect();
    line(format!("  questions ({}):", questions.len()));
    for (n, choices) in questions {
        let ch: Vec<String> = choices
            .iter()
            .map(|o| format!("{}={}", o.digit, o.target))
            .collect();
        line(format!("    {:<22} {}", n.id, ch.join(" ")));
    }
    match &c.schedule {
        None => line("  schedule: none (the poll is always open)".into()),
        Some(s) => {
            let exprs: Vec<&str> = s.broadcasts.iter().map(|b| b.expr.as_str()).collect();
            let window = s
                .poll_window
                .map_or("until the next broadcast".to_string(), |w| {
                    format!("{} after each", format_duration(w))
                });
            line(format!(
                "  schedule:  {} in {}; poll open {}",
                exprs.join(", "),
                s.timezone.name(),
                window
            ));
            if s.from.is_some() || s.until.is_some() {
                let d = |x: Option<chrono::NaiveDate>| x.map_or("…".into(), |d| d.to_string());
                line(format!(
                    "  runs:      from {} until {}",
                    d(s.from),
                    d(s.until)
                ));
            }
            let next = s.next_broadcasts(now, 3);
            if next.is_empty() {
                line(
                    "  next broadcasts: none (the campaign has ended or has no broadcasts)".into(),
                );
            } else {
                line("  next broadcasts:".into());
                for b in next {
                    line(format!("    {}", describe(b)));
                }
            }
            match s.poll(now) {
                Poll::Open { broadcast: Some(b) } => line(format!(
                    "  poll: open now, for the broadcast of {}",
                    describe(b.with_timezone(&s.timezone))
                )),
                Poll::Open { broadcast: None } => line("  poll: open now".into()),
                Poll::Closed => line(format!(
                    "  poll: closed now{}",
                    s.closed
                        .as_ref()
                        .map(|c| format!(" (questions lead to `{c}`)"))
                        .unwrap_or_default()
                )),
            }
        }
    }
    out
}
