//! Small groups: what the API, the live stream and the pages show of the counts,
//! so that a caller cannot be picked out of them. One implementation for every
//! reader: [`super::api::masked_results`] (results, live results, the campaign
//! page and the board) and [`super::funnel::funnel_value`] (the funnel) call it.
//!
//! Three rules, with `small` the threshold (`small_group`, default
//! [`super::SMALL_GROUP`]; 0 or 1 turns all of them off):
//!
//! 1. **A small population shows no counts.** When fewer than `small` calls
//!    match the filter (`broadcast`, `since`/`until`), a window around one call
//!    would show that caller's answers: every count of the response becomes
//!    `"<small>"` and `small_population` is `true`. The same holds for a
//!    broadcast of the `broadcasts` list that has fewer than `small` calls (its
//!    `answers`, which may be more, read `"masked"`).
//! 2. **A small cell is masked.** A breakdown cell (the callers who gave choice
//!    `i` to a question and choice `j` to the `by` question) below `small` is
//!    `"<small>"`; so is a funnel count below `small`.
//! 3. **Complementary suppression.** A masked cell must not be computable from
//!    what is shown beside it. A breakdown is a table whose rows add up to (at
//!    most) the choice's `count` and whose columns add up to (at most) the `by`
//!    question's own counts; taking the bound as exact (the worst case: the
//!    analyst may know that everybody answered both), a line with exactly one
//!    masked cell gives it away as the total minus the others. So in every
//!    line with one masked cell, the smallest shown cell is masked too, rows and
//!    columns again until no line has exactly one. The funnel's hang-ups add up
//!    to `calls - completed` and get the same treatment. Such a cell is not
//!    small, so it reads `"masked"` rather than a false `"<5"`.
//!
//! Totals (`calls`, `completed`, `answered`, each choice's `count`, the
//! languages) of a population of at least `small` calls are shown: each counts
//! one attribute of many callers, and never crosses it with a second one, which
//! is what the masked breakdown does.
//!
//! What this does not stop: differences between two queries (results until
//! 19:31 minus results until 19:30 are the answers of the calls in that minute).
//! The row-level exports that made this trivial are for admins only
//! ([`super::ROW_LEVEL`]).

use serde_json::Value;

/// The key set to `true` on a response whose population is below the threshold.
pub(crate) const SMALL_POPULATION: &str = "small_population";

/// A count as the API shows it: the number, or `"<N"` below the small-group
/// threshold `small` (0 and 1 mask nothing).
pub(crate) fn masked(n: u64, small: u64) -> Value {
    if hides(n, small) {
        hidden(small)
    } else {
        Value::from(n)
    }
}

/// Whether `n` is a small group. With 1, only zero would be "<1": a zero
/// identifies nobody.
fn hides(n: u64, small: u64) -> bool {
    small > 1 && n < small
}

fn hidden(small: u64) -> Value {
    Value::String(format!("<{small}"))
}

/// What a masked count that is not itself small reads.
pub(crate) const COMPLEMENT: &str = "masked";

/// `n` as shown when `hide` says whether it is masked: `"<small>"` if it is a
/// small group, [`COMPLEMENT`] if it is hidden to protect one.
fn shown(n: u64, hide: bool, small: u64) -> Value {
    match (hide, hides(n, small)) {
        (false, _) => Value::from(n),
        (true, true) => hidden(small),
        (true, false) => Value::String(COMPLEMENT.into()),
    }
}

/// Which cells of `table` (rows of equal length) to hide: those below `small`,
/// then, until stable, in every row and column with exactly one hidden cell,
/// the smallest shown one (the first of equals).
pub(crate) fn suppress(table: &[Vec<u64>], small: u64) -> Vec<Vec<bool>> {
    let mut hide: Vec<Vec<bool>> = table
        .iter()
        .map(|row| row.iter().map(|&n| hides(n, small)).collect())
        .collect();
    if small <= 1 {
        return hide;
    }
    let columns = table.iter().map(Vec::len).max().unwrap_or(0);
    loop {
        let mut changed = false;
        for (i, row) in table.iter().enumerate() {
            let line = row.iter().enumerate().map(|(j, &n)| ((i, j), n));
            changed |= complement(line, &mut hide);
        }
        for j in 0..columns {
            let line = table
                .iter()
                .enumerate()
                .filter_map(|(i, row)| row.get(j).map(|&n| ((i, j), n)));
            changed |= complement(line, &mut hide);
        }
        if !changed {
            return hide;
        }
    }
}

/// If exactly one cell of `line` is hidden, hides the smallest shown one too;
/// true if it did. (A line of one cell has no partner: it is the total itself.)
fn complement(
    line: impl Iterator<Item = ((usize, usize), u64)> + Clone,
    hide: &mut [Vec<bool>],
) -> bool {
    let is_hidden = |hide: &[Vec<bool>], (i, j): (usize, usize)| {
        hide.get(i).and_then(|r| r.get(j)).copied().unwrap_or(false)
    };
    let hidden_cells = line.clone().filter(|(at, _)| is_hidden(hide, *at)).count();
    if hidden_cells != 1 {
        return false;
    }
    let partner = line
        .filter(|(at, _)| !is_hidden(hide, *at))
        .min_by_key(|(_, n)| *n)
        .map(|(at, _)| at);
    match partner.and_then(|(i, j)| hide.get_mut(i).and_then(|r| r.get_mut(j))) {
        Some(cell) => {
            *cell = true;
            true
        }
        None => false,
    }
}

/// Masks the results JSON of [`crate::results::compute`] by the three rules.
pub(crate) fn mask_results(results: &mut Value, small: u64) {
    if small <= 1 {
        return;
    }
    mask_broadcasts(results, small);
    let population = results.get("calls").and_then(Value::as_u64).unwrap_or(0);
    if hides(population, small) {
        hide_all_counts(results, small);
        return;
    }
    let Some(by) = results
        .get("by")
        .and_then(|b| b.get("choices"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
    else {
        return;
    };
    let Some(questions) = results.get_mut("questions").and_then(Value::as_array_mut) else {
        return;
    };
    for question in questions {
        let Some(choices) = question.get_mut("choices").and_then(Value::as_array_mut) else {
            continue;
        };
        let table: Vec<Vec<u64>> = choices
            .iter()
            .map(|choice| {
                by.iter()
                    .map(|b| {
                        choice
                            .get("by")
                            .and_then(|cells| cells.get(b))
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                    })
                    .collect()
            })
            .collect();
        let hide = suppress(&table, small);
        for (choice, hide_row) in choices.iter_mut().zip(&hide) {
            let Some(cells) = choice.get_mut("by").and_then(Value::as_object_mut) else {
                continue;
            };
            for (b, &h) in by.iter().zip(hide_row) {
                if let Some(cell) = cells.get_mut(b)
                    && let Some(n) = cell.as_u64()
                {
                    *cell = shown(n, h, small);
                }
            }
        }
    }
}

/// A broadcast of the list with fewer than `small` calls shows no counts.
fn mask_broadcasts(results: &mut Value, small: u64) {
    let Some(list) = results.get_mut("broadcasts").and_then(Value::as_array_mut) else {
        return;
    };
    for b in list {
        let calls = b.get("calls").and_then(Value::as_u64).unwrap_or(0);
        if hides(calls, small) {
            for key in ["calls", "answers"] {
                if let Some(v) = b.get_mut(key)
                    && let Some(n) = v.as_u64()
                {
                    *v = shown(n, true, small);
                }
            }
        }
    }
}

/// Rule 1 for the results: every count hidden, and the flag set.
fn hide_all_counts(results: &mut Value, small: u64) {
    let Some(r) = results.as_object_mut() else {
        return;
    };
    for key in ["calls", "completed"] {
        if let Some(v) = r.get_mut(key) {
            *v = hidden(small);
        }
    }
    if let Some(languages) = r.get_mut("languages").and_then(Value::as_object_mut) {
        for v in languages.values_mut() {
            *v = hidden(small);
        }
    }
    if let Some(questions) = r.get_mut("questions").and_then(Value::as_array_mut) {
        for q in questions {
            if let Some(v) = q.get_mut("answered") {
                *v = hidden(small);
            }
            for c in q
                .get_mut("choices")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(v) = c.get_mut("count") {
                    *v = hidden(small);
                }
                for cell in c
                    .get_mut("by")
                    .and_then(Value::as_object_mut)
                    .into_iter()
                    .flat_map(|m| m.values_mut())
                {
                    *cell = hidden(small);
                }
            }
        }
    }
    r.insert(SMALL_POPULATION.into(), Value::Bool(true));
}

/// The funnel's counts as shown: `calls` and `completed`, and per node
/// (`reached`, `hung_up`) in the order given, masked by the three rules.
pub(crate) struct FunnelShown {
    pub calls: Value,
    pub completed: Value,
    pub nodes: Vec<(Value, Value)>,
    pub small_population: bool,
}

/// Masks a funnel: the counts of `calls` that reached each node and hung up
/// there, `completed` of them reaching a hang-up node.
pub(crate) fn mask_funnel(
    calls: u64,
    completed: u64,
    nodes: &[(u64, u64)],
    small: u64,
) -> FunnelShown {
    if hides(calls, small) {
        return FunnelShown {
            calls: hidden(small),
            completed: hidden(small),
            nodes: nodes
                .iter()
                .map(|_| (hidden(small), hidden(small)))
                .collect(),
            small_population: true,
        };
    }
    // The hang-ups are one line adding up to the calls that did not complete.
    let hung_up: Vec<u64> = nodes.iter().map(|(_, h)| *h).collect();
    let hide = suppress(std::slice::from_ref(&hung_up), small);
    let hide = hide.first().cloned().unwrap_or_default();
    FunnelShown {
        calls: Value::from(calls),
        completed: Value::from(completed),
        nodes: nodes
            .iter()
            .zip(hide.iter().chain(std::iter::repeat(&false)))
            .map(|((reached, h), &hide_h)| (masked(*reached, small), shown(*h, hide_h, small)))
            .collect(),
        small_population: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Rows and columns of a suppression: none has exactly one hidden cell.
    fn no_lone_hidden_cell(hide: &[Vec<bool>]) -> bool {
        let rows_ok = hide.iter().all(|r| r.iter().filter(|h| **h).count() != 1);
        let cols = hide.first().map_or(0, Vec::len);
        let cols_ok = (0..cols).all(|j| hide.iter().filter(|r| r[j]).count() != 1);
        rows_ok && cols_ok
    }

    #[test]
    fn a_lone_small_cell_takes_the_next_smallest_with_it() {
        // Row 0 has one small cell (2): the 6 goes too. That leaves columns 0
        // and 1 with one hidden cell each: their smallest shown cells (20 in
        // column 1, then 30 in column 0) go as well.
        let t = vec![vec![2, 6, 40], vec![30, 20, 50]];
        let hide = suppress(&t, 5);
        assert_eq!(
            hide,
            [[true, true, false], [true, true, false]].map(Vec::from)
        );
    }

    #[test]
    fn suppression_settles_with_no_line_of_one_hidden_cell() {
        let tables = [
            vec![vec![2, 6, 40], vec![30, 20, 50]],
            vec![vec![1, 0, 9], vec![7, 8, 9], vec![9, 9, 3]],
            vec![vec![0, 12], vec![12, 0]],
            vec![vec![4]],
            vec![vec![100, 3, 100, 100], vec![100, 100, 100, 100]],
        ];
        for t in &tables {
            let hide = suppress(t, 5);
            for (row, hrow) in t.iter().zip(&hide) {
                for (n, h) in row.iter().zip(hrow) {
                    assert!(*n >= 5 || *h, "{t:?}: every small cell is hidden");
                }
            }
            if t.len() > 1 && t[0].len() > 1 {
                assert!(no_lone_hidden_cell(&hide), "{t:?} → {hide:?}");
            }
        }
        // 0 and 1 turn it off.
        assert_eq!(suppress(&[vec![0, 3]], 1), [vec![false, false]]);
        assert_eq!(suppress(&[vec![0, 3]], 0), [vec![false, false]]);
    }

    #[test]
    fn breakdown_cells_are_masked_with_their_complements_totals_are_not() {
        let mut v = json!({
            "calls": 60,
            "questions": [
                {"id": "q", "answered": 55, "choices": [
                    {"id": "yes", "digit": "1", "count": 30, "by": {"f": 2, "m": 28}},
                    {"id": "no", "digit": "2", "count": 25, "by": {"f": 10, "m": 15}}
                ]},
            ],
            "by": {"id": "g", "choices": ["f", "m"]},
            "broadcasts": [{"number": 1, "calls": 57, "answers": 200}, {"number": 2, "calls": 3, "answers": 9}]
        });
        mask_results(&mut v, 5);
        let q = &v["questions"][0]["choices"];
        assert_eq!(q[0]["by"]["f"], "<5");
        assert_eq!(q[0]["by"]["m"], COMPLEMENT, "30 - 28 would tell the 2");
        // Then column f and m have one hidden cell each: the row below goes too.
        assert_eq!(q[1]["by"]["f"], COMPLEMENT);
        assert_eq!(q[1]["by"]["m"], COMPLEMENT);
        assert_eq!(q[0]["count"], 30);
        assert_eq!(v["calls"], 60);
        assert!(v.get(SMALL_POPULATION).is_none());
        assert_eq!(v["broadcasts"][0]["calls"], 57);
        assert_eq!(v["broadcasts"][1]["calls"], "<5");
        assert_eq!(v["broadcasts"][1]["answers"], COMPLEMENT);
    }

    #[test]
    fn a_small_population_shows_no_counts() {
        let mut v = json!({
            "calls": 3, "completed": 2, "languages": {"bm": 3, "fr": 0},
            "questions": [{"id": "q", "answered": 3, "choices": [
                {"id": "yes", "digit": "1", "count": 3, "by": {"f": 2, "m": 1}}
            ]}],
            "by": {"id": "g", "choices": ["f", "m"]},
            "broadcasts": []
        });
        let mut off = v.clone();
        mask_results(&mut v, 5);
        assert_eq!(v[SMALL_POPULATION], true);
        for p in [
            "/calls",
            "/completed",
            "/languages/bm",
            "/languages/fr",
            "/questions/0/answered",
            "/questions/0/choices/0/count",
            "/questions/0/choices/0/by/f",
            "/questions/0/choices/0/by/m",
        ] {
            assert_eq!(v.pointer(p).unwrap(), "<5", "{p}");
        }
        // 0 turns masking off; another threshold shows in the label.
        mask_results(&mut off, 0);
        assert_eq!(off["calls"], 3);
        assert_eq!(masked(9, 10), "<10");
        assert_eq!(masked(10, 10), 10);
        assert_eq!(masked(0, 1), 0);
    }

    #[test]
    fn the_funnel_hides_a_lone_hang_up_with_a_partner() {
        // 100 calls, 80 completed: the hang-ups add up to 20.
        let f = mask_funnel(100, 80, &[(100, 12), (88, 6), (82, 2), (80, 0)], 5);
        assert!(!f.small_population);
        let hung: Vec<&Value> = f.nodes.iter().map(|(_, h)| h).collect();
        assert_eq!(hung, [&json!(12), &json!(6), &json!("<5"), &json!("<5")]);
        let f = mask_funnel(100, 76, &[(100, 12), (88, 4), (84, 8)], 5);
        assert_eq!(f.nodes[0].1, 12);
        assert_eq!(f.nodes[1].1, "<5");
        assert_eq!(f.nodes[2].1, COMPLEMENT, "20 - 12 - 8 would tell the 4");
        let f = mask_funnel(4, 1, &[(4, 3), (1, 0)], 5);
        assert!(f.small_population);
        assert_eq!(f.calls, "<5");
        assert_eq!(f.nodes[0], (json!("<5"), json!("<5")));
    }
}
