//! Whole-campaign checks that need every node at once: references, reachability,
//! a way to the end, keys that clash, and a recording for every prompt in every
//! language.
//!
//! The loader hands over where each reference and prompt was written (`Located`),
//! so each problem comes back with its line.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{AUDIO_EXTENSIONS, Campaign, NodeKind};

/// Where the loader found the things checked here.
#[derive(Debug, Default)]
pub struct Located {
    /// (what refers, the node id it names, line).
    pub refs: Vec<(String, String, usize)>,
    /// (prompt name, line), every use.
    pub prompts: Vec<(String, usize)>,
}

/// Runs every check; `report(line, message)` is called once per problem.
pub fn check(c: &Campaign, located: &Located, report: &mut dyn FnMut(usize, String)) {
    // Ids must be unique before anything else means something.
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    for n in &c.nodes {
        if let Some(line) = first_line.get(n.id.as_str()) {
            report(
                n.line,
                format!(
                    "node id `{}` is used twice (first at line {line}); each node needs its own id",
                    n.id
                ),
            );
        } else {
            first_line.insert(&n.id, n.line);
        }
    }

    let mut dangling = false;
    for (what, target, line) in &located.refs {
        if c.node(target).is_none() {
            dangling = true;
            let ids: Vec<&str> = c.nodes.iter().map(|n| n.id.as_str()).collect();
            let hint = super::load::suggest(target, &ids);
            report(*line, format!("{what}: no node has id `{target}`{hint}"));
        }
    }

    for n in &c.nodes {
        let digits: Vec<char> = match &n.kind {
            NodeKind::Menu { options, .. } => options.iter().map(|o| o.digit).collect(),
            NodeKind::Question { choices, .. } => choices.iter().map(|o| o.digit).collect(),
            NodeKind::Language { .. } => {
                if c.languages.len() > 9 {
                    report(
                        n.line,
                        format!(
                            "node `{}`: a language menu offers one digit per language, so at most 9 languages (found {})",
                            n.id,
                            c.languages.len()
                        ),
                    );
                }
                ('1'..='9').take(c.languages.len()).collect()
            }
            _ => vec![],
        };
        if let Some(r) = n.input.repeat
            && digits.contains(&r)
        {
            report(
                n.line,
                format!(
                    "node `{}`: the repeat key `{r}` is also one of its digits; set another `repeat` key",
                    n.id
                ),
            );
        }
    }

    if !dangling {
        check_graph(c, report);
    }
    check_recordings(c, located, report);
}

/// Every node reachable from `start`, and some way from `start` to a hangup node.
fn check_graph(c: &Campaign, report: &mut dyn FnMut(usize, String)) {
    let closed = c.schedule.as_ref().and_then(|s| s.closed.as_deref());
    let successors = |id: &str| -> Vec<String> {
        let Some(n) = c.node(id) else { return vec![] };
        let mut next: Vec<String> = n
            .kind
            .successors()
            .into_iter()
            .map(str::to_string)
            .collect();
        if let (NodeKind::Question { .. }, Some(closed)) = (&n.kind, closed) {
            next.push(closed.to_string());
        }
        next
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue = VecDeque::from([c.start.clone()]);
    while let Some(id) = queue.pop_front() {
        if seen.insert(id.clone()) {
            queue.extend(successors(&id));
        }
    }
    for n in &c.nodes {
        if !seen.contains(&n.id) {
            report(
                n.line,
                format!(
                    "node `{}` cannot be reached from the start node `{}`: no `next`, `options` or `on_fail` leads to it",
                    n.id, c.start
                ),
            );
        }
    }
    let ends = seen
        .iter()
        .filter_map(|id| c.node(id))
        .any(|n| matches!(n.kind, NodeKind::Hangup));
    if !ends {
        let line = c.node(&c.start).map_or(1, |n| n.line);
        report(
            line,
            format!(
                "no path leads from the start node `{}` to a hangup node: a call could never be completed",
                c.start
            ),
        );
    }
}

fn check_recordings(c: &Campaign, located: &Located, report: &mut dyn FnMut(usize, String)) {
    if !c.audio_dir.is_dir() {
        report(
            c.audio_line,
            format!(
                "`audio`: the folder `{}` does not exist",
                c.audio_dir.display()
            ),
        );
        return;
    }
    let mut done: HashSet<&str> = HashSet::new();
    for (prompt, line) in &located.prompts {
        if !done.insert(prompt) {
            continue;
        }
        if prompt.is_empty() || prompt.contains(['/', '\\']) || prompt.starts_with('.') {
            report(
                *line,
                format!(
                    "prompt `{prompt}` is not a recording name; name a file of the language folder without its extension, e.g. \"welcome\""
                ),
            );
            continue;
        }
        for lang in &c.languages {
            let dir = c.audio_dir.join(lang);
            let found: Vec<String> = AUDIO_EXTENSIONS
                .iter()
                .map(|ext| format!("{prompt}.{ext}"))
                .filter(|f| dir.join(f).is_file())
                .collect();
            match found.len() {
                0 => report(
                    *line,
                    format!(
                        "prompt `{prompt}` has no recording for language `{lang}`: expected {}/{prompt}.{{{}}}",
                        dir.display(),
                        AUDIO_EXTENSIONS.join(",")
                    ),
                ),
                1 => {}
                _ => report(
                    *line,
                    format!(
                        "prompt `{prompt}` has several recordings for language `{lang}` ({}); keep one",
                        found.join(", ")
                    ),
                ),
            }
        }
    }
}
