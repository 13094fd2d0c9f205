//! `kuma call`: one call through a campaign, step by step, so a broadcaster can
//! walk through it before air. Keys come from `--digits` or from the terminal.

use std::collections::VecDeque;
use std::io::{BufRead, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;

use super::Env;
use crate::campaign::{Campaign, Node};
use crate::schedule::{Poll, describe};
use crate::simulator::{Caller, Output, Reply, Setup, Step, Write, WriteOp, run_call};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Campaign id (its file name without .toml).
    campaign: String,
    /// Keys fed one by one whenever the flow waits, e.g. "2 1 _ 3": `_` is silence
    /// until the timeout; when they run out the caller hangs up. Without it, keys
    /// are read from the terminal.
    #[arg(long, value_name = "KEYS")]
    digits: Option<String>,
    /// The caller's number (only its pseudonym is stored).
    #[arg(long, value_name = "NUMBER", default_value = "simulator")]
    caller: String,
    /// Pretend the call happens at this time (YYYY-MM-DD[THH:MM], campaign's zone),
    /// e.g. during a broadcast's poll window.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Simulate a helpline that does not answer (the transfer node's `on_fail`).
    #[arg(long)]
    transfer_fails: bool,
}

/// Parses `--digits`: keys and `_`, with or without spaces between them.
pub fn parse_digits(text: &str) -> Result<VecDeque<Reply>, String> {
    text.chars()
        .enumerate()
        .filter(|(_, c)| !c.is_whitespace())
        .map(|(i, c)| match c {
            '0'..='9' | '*' | '#' => Ok(Reply::Key(c)),
            '_' => Ok(Reply::Silence),
            _ => Err(format!(
                "bad --digits \"{text}\": `{c}` (character {}) is not a key (0-9, *, #) or _ for silence",
                i + 1
            )),
        })
        .collect()
}

/// Keys from `--digits`, then a hang-up.
struct Scripted {
    keys: VecDeque<Reply>,
    transfer_fails: bool,
}

impl Caller for Scripted {
    fn key(&mut self, _: &Campaign, _: &Node) -> Reply {
        self.keys.pop_front().unwrap_or(Reply::HangUp)
    }
    /// The next key, if it means something during the message (a replay key
    /// or the repeat key); any other key waits for the next question.
    fn during_message(&mut self, c: &Campaign, node: &Node) -> Option<char> {
        match self.keys.front() {
            Some(Reply::Key(k)) if message_keys(c, node).contains(k) => {
                let k = *k;
                self.keys.pop_front();
                Some(k)
            }
            _ => None,
        }
    }
    fn transfer_answers(&mut self) -> bool {
        !self.transfer_fails
    }
}

/// The keys that act during a message: `[replay]`'s and the repeat key.
fn message_keys(c: &Campaign, node: &Node) -> Vec<char> {
    let mut keys: Vec<char> = c
        .replay
        .iter()
        .flat_map(|r| r.keys().map(|(_, k)| k))
        .collect();
    keys.extend(node.input.repeat);
    keys
}

/// Keys typed at the terminal: a line of keys, an empty line for silence, `q` or
/// end of input to hang up.
struct Terminal {
    queued: VecDeque<Reply>,
    transfer_fails: bool,
}

impl Caller for Terminal {
    fn key(&mut self, _: &Campaign, _: &Node) -> Reply {
        loop {
            if let Some(r) = self.queued.pop_front() {
                return r;
            }
            eprint!("  key (0-9 * #; empty line = silence; q = hang up)> ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            match std::io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => return Reply::HangUp,
                Ok(_) => {}
            }
            let line = line.trim();
            if line.is_empty() {
                return Reply::Silence;
            }
            if line.eq_ignore_ascii_case("q") {
                return Reply::HangUp;
            }
            match parse_digits(line) {
                Ok(keys) => self.queued = keys,
                Err(e) => eprintln!("  {}", e.replace("bad --digits", "not keys:")),
            }
        }
    }
    fn during_message(&mut self, c: &Campaign, node: &Node) -> Option<char> {
        let keys = message_keys(c, node);
        if let Some(Reply::Key(k)) = self.queued.front()
            && keys.contains(k)
        {
            let k = *k;
            self.queued.pop_front();
            return Some(k);
        }
        if !self.queued.is_empty() {
            return None;
        }
        let help: Vec<String> = c
            .replay
            .iter()
            .flat_map(|r| r.keys().map(|(name, k)| format!("{k} {name}")))
            .collect();
        eprint!(
            "  key during the message ({}; empty line = let it play)> ",
            help.join(", ")
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return None;
        }
        let mut cs = line.trim().chars();
        match (cs.next(), cs.next()) {
            (Some(k), None) if keys.contains(&k) => Some(k),
            _ => None,
        }
    }
    fn transfer_answers(&mut self) -> bool {
        !self.transfer_fails
    }
}

/// The transcript beside a recording, shortened to one line.
fn transcript(c: &Campaign, language: &str, prompt: &str) -> String {
    let file = c.audio_dir.join(language).join(format!("{prompt}.txt"));
    let Ok(text) = std::fs::read_to_string(file) else {
        return String::new();
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut first = lines.next().unwrap_or_default().trim().to_string();
    let placeholder = first.starts_with("PLACEHOLDER");
    if placeholder {
        first = lines.next().unwrap_or_default().trim().to_string();
    }
    let mut short: String = first.chars().take(72).collect();
    if short.len() < first.len() {
        short.push('…');
    }
    format!(
        "{}\"{short}\"",
        if placeholder { "(placeholder) " } else { "" }
    )
}

pub async fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let scripted = args
        .digits
        .as_deref()
        .map(parse_digits)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let c = Arc::new(env.campaign(&args.campaign)?);
    let start = match &args.at {
        Some(t) => super::time_arg(t, &c, "--at")?,
        None => Utc::now(),
    };
    let store = env.store().await?;
    let keys = env.keys(&store).await?;
    // As a gateway gives it: "+223 70 12 34 56" is the caller +22370123456.
    let number: String = args.caller.split_whitespace().collect();
    let caller = keys.pseudonyms.pseudonym(&number);
    let tz = c
        .schedule
        .as_ref()
        .map(|s| s.timezone)
        .unwrap_or(chrono_tz::UTC);
    println!("calling {} ({}) as caller {caller}", c.id, c.title);
    println!("  at {}", describe(start.with_timezone(&tz)));
    if let Some(s) = &c.schedule {
        match s.poll(start) {
            Poll::Open { broadcast: Some(b) } => {
                println!(
                    "  poll open, for the broadcast of {}",
                    describe(b.with_timezone(&tz))
                )
            }
            Poll::Open { broadcast: None } => println!("  poll open"),
            Poll::Closed => println!(
                "  poll closed now: questions are skipped (try --at during a broadcast's poll window)"
            ),
        }
    }
    let mut caller_impl: Box<dyn Caller + Send> = match scripted {
        Some(keys) => Box::new(Scripted {
            keys,
            transfer_fails: args.transfer_fails,
        }),
        None => Box::new(Terminal {
            queued: VecDeque::new(),
            transfer_fails: args.transfer_fails,
        }),
    };
    let setup = Setup {
        campaign: Arc::clone(&c),
        number: &number,
        keys: &keys,
        policy: Arc::new(env.callback_policy()?),
        channel: "terminal",
        start,
    };
    let mut print = |step: Step<'_>| match step {
        Step::Play { prompts, bargein } => {
            for p in prompts {
                println!(
                    "  ▶ {}/{}  {}",
                    p.language,
                    p.name,
                    transcript(&c, &p.language, &p.name)
                );
            }
            if !bargein {
                println!("    (keys are ignored while this plays)");
            }
        }
        Step::WaitingForKey => println!("  … waiting for a key"),
        Step::Output(Output::Write(Write { op })) => match op {
            WriteOp::Visit { node, .. } => {
                let kind = c.node(node).map_or("", |n| n.kind.name());
                println!("[{node}] {kind}");
            }
            WriteOp::Language { language, .. } => println!("  language: {language}"),
            WriteOp::Answer {
                question,
                choice,
                digit,
                ..
            } => {
                println!("  ✔ answer saved: {question} = {choice} (key {digit})")
            }
            WriteOp::Completed { .. } => println!("  (call completed)"),
            WriteOp::Subscribe { .. } => {
                println!("  ✔ subscribed: kuma calls this number after each broadcast")
            }
            WriteOp::Unsubscribe { .. } => {
                println!("  unsubscribed: no calls after broadcasts (number erased, if kept)")
            }
            WriteOp::End { .. } | WriteOp::Withdraw { .. } | WriteOp::Recording { .. } => {}
        },
        Step::Output(o) => match o {
            Output::Record { max, .. } => println!(
                "  ● beep, recording up to {} (# to stop)",
                crate::campaign::format_duration(*max)
            ),
            Output::Transfer { to } => println!("  ☎ transferring to {to}"),
            Output::HangUp => println!("  kuma hangs up"),
            Output::Seek { seconds } if *seconds < 0 => {
                println!("  ⏪ back {}s", seconds.unsigned_abs())
            }
            Output::Seek { seconds } => println!("  ⏩ forward {seconds}s"),
            Output::Pause => println!("  ⏸ paused (the same key resumes)"),
            Output::Resume => println!("  ▶ resumed"),
            _ => {}
        },
        Step::Key(k) => println!("  key {k}"),
        Step::Silence => println!("  (silence until the timeout)"),
        Step::CallerHangsUp => println!("  the caller hangs up"),
        Step::Recorded(d) => println!(
            "  (simulated: the caller speaks for {}; nothing is recorded)",
            crate::campaign::format_duration(d)
        ),
        Step::TransferAnswered => {
            println!("  (simulated: the helpline answers; the caller is put through)")
        }
        Step::TransferFailed => println!("  (simulated: the helpline does not answer)"),
    };
    let report = run_call(&store, &setup, caller_impl.as_mut(), &mut print).await?;
    println!(
        "call {} ended: {} ({} answer{} saved)",
        report.call,
        report.outcome.as_str(),
        report.answers,
        if report.answers == 1 { "" } else { "s" }
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_with_and_without_spaces() {
        let r = parse_digits("1 3 _ 2").unwrap();
        assert_eq!(
            Vec::from(r),
            [
                Reply::Key('1'),
                Reply::Key('3'),
                Reply::Silence,
                Reply::Key('2')
            ]
        );
        assert_eq!(parse_digits("13_2*#").unwrap().len(), 6);
        assert!(parse_digits("").unwrap().is_empty());
    }

    #[test]
    fn bad_digits_say_which_character() {
        let e = parse_digits("1 x 2").unwrap_err();
        assert!(e.contains("`x` (character 3) is not a key"), "{e}");
    }
}
