//! Every word the web pages show, in French and English: one table per language,
//! so a translator reads one place. The language is picked per request (see
//! [`Lang::pick`]): `?lang=` (remembered in a cookie), else the cookie, else the
//! browser's `Accept-Language`, else English.

use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;

use crate::outbound::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "fr" => Some(Lang::Fr),
            _ => None,
        }
    }

    /// The first of French or English in an `Accept-Language` header, by the
    /// listed quality (`fr-ML,fr;q=0.9,en;q=0.8` is French).
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Lang::parse(primary) else {
                continue;
            };
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l)
    }

    pub fn t(self) -> &'static Strings {
        match self {
            Lang::En => &EN,
            Lang::Fr => &FR,
        }
    }

    /// A time in the campaign's zone, in words: "Tuesday 1 December 2026, 19:00".
    pub fn date_time(self, at: DateTime<Tz>) -> String {
        let t = self.t();
        let day = t.days[at.weekday().num_days_from_monday() as usize];
        let month = t.months[at.month0() as usize];
        format!(
            "{day} {} {month} {}, {:02}:{:02}",
            at.day(),
            at.year(),
            at.hour(),
            at.minute()
        )
    }

    /// "1 234" in French, "1,234" in English.
    pub fn number(self, n: u64) -> String {
        let digits = n.to_string();
        let sep = match self {
            Lang::En => ',',
            Lang::Fr => '\u{202f}',
        };
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        out
    }
}

/// The words of one language.
pub struct Strings {
    pub days: [&'static str; 7],
    pub months: [&'static str; 12],
    /// Between a label and its value (French puts a space before the colon).
    pub colon: &'static str,
    pub campaigns: &'static str,
    pub log_in: &'static str,
    pub log_out: &'static str,
    pub token: &'static str,
    pub token_help: &'static str,
    pub bad_token: &'static str,
    pub forbidden: &'static str,
    pub not_found: &'static str,
    pub bad_request: &'static str,
    pub internal: &'static str,
    pub back: &'static str,
    pub no_campaign: &'static str,
    pub problems: &'static str,
    pub poll_open: &'static str,
    pub poll_closed: &'static str,
    pub next_broadcasts: &'static str,
    pub calls: &'static str,
    pub completed: &'static str,
    pub answered: &'static str,
    pub results: &'static str,
    pub breakdown_by: &'static str,
    pub nobody: &'static str,
    pub broadcast: &'static str,
    pub all_broadcasts: &'static str,
    pub show: &'static str,
    pub small_group_note: &'static str,
    pub too_few_calls: &'static str,
    pub languages: &'static str,
    pub calls_per_hour: &'static str,
    pub calls_per_hour_help: &'static str,
    pub no_broadcast_yet: &'static str,
    pub funnel: &'static str,
    pub funnel_help: &'static str,
    pub download: &'static str,
    pub download_csv: &'static str,
    pub download_floip: &'static str,
    pub on_air: &'static str,
    pub on_air_board: &'static str,
    pub live: &'static str,
    pub reconnecting: &'static str,
    pub recordings: &'static str,
    pub no_recordings: &'static str,
    pub note: &'static str,
    pub picked: &'static str,
    pub save: &'static str,
    pub saved: &'static str,
    pub seconds: &'static str,
    pub language: &'static str,
    pub simulator: &'static str,
    pub simulator_help: &'static str,
    pub start_call: &'static str,
    pub hang_up: &'static str,
    pub call_ended: &'static str,
    pub no_answer_key: &'static str,
    pub question: &'static str,
    pub needs_js: &'static str,
    pub sim_at: &'static str,
    pub skip: &'static str,
    pub sim_answer: &'static str,
    pub sim_transfer: &'static str,
    pub sim_helpline_answers: &'static str,
    pub sim_helpline_fails: &'static str,
    pub sim_recording: &'static str,
    pub sim_stop_recording: &'static str,
    pub callbacks: &'static str,
    /// `{tz}`: the campaign's time zone.
    pub callbacks_help: &'static str,
    pub callbacks_total: &'static str,
    pub attempts: &'static str,
    pub missed_calls: &'static str,
    pub after_broadcast: &'static str,
    pub no_callbacks: &'static str,
    /// `{n}`: how many are shown.
    pub latest_callbacks: &'static str,
    pub caller: &'static str,
    pub status: &'static str,
    pub next_try: &'static str,
    /// The attempts column's heading.
    pub tries: &'static str,
    /// A call-back's status, in the order of [`Strings::status`].
    pub statuses: [&'static str; 8],
}

impl Strings {
    /// A call-back's status in words.
    pub fn status(&self, s: Status) -> &'static str {
        let i = match s {
            Status::Queued => 0,
            // A call-back is never "ringing" (its attempt is): dialling it is.
            Status::Dialing | Status::Ringing => 1,
            Status::Answered => 2,
            Status::Busy => 3,
            Status::NoAnswer => 4,
            Status::Failed => 5,
            Status::Cancelled => 6,
            Status::Refused => 7,
        };
        self.statuses[i]
    }
}

pub static EN: Strings = Strings {
    days: [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ],
    months: [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    colon: ": ",
    campaigns: "Campaigns",
    log_in: "Log in",
    log_out: "Log out",
    token: "Token",
    token_help: "Paste the token you were given (kuma token create). It is kept in this browser only, as a cookie.",
    bad_token: "This token is unknown or was revoked.",
    forbidden: "Your token does not allow this page.",
    not_found: "There is nothing here.",
    bad_request: "This request is not right:",
    internal: "Something went wrong on the server; try again in a moment.",
    back: "Back to the campaigns",
    no_campaign: "No campaign yet.",
    problems: "Campaign files with problems",
    poll_open: "The poll is open",
    poll_closed: "The poll is closed",
    next_broadcasts: "Next broadcasts",
    calls: "Calls",
    completed: "completed",
    answered: "answered",
    results: "Results",
    breakdown_by: "Break down by",
    nobody: "(none)",
    broadcast: "Broadcast",
    all_broadcasts: "All broadcasts",
    show: "Show",
    small_group_note: "Groups of fewer than {n} callers are shown as <{n}, and * hides a larger group where the totals would give a small one away, so that nobody can be picked out.",
    too_few_calls: "Fewer than {n} calls match: no numbers are shown, so that nobody can be picked out.",
    languages: "Languages",
    calls_per_hour: "Calls per hour around each broadcast",
    calls_per_hour_help: "From 2 hours before the broadcast to 22 hours after, in the campaign's time zone. The darker bar is the broadcast's hour.",
    no_broadcast_yet: "No broadcast has calls yet.",
    funnel: "Where callers stop",
    funnel_help: "How many calls reached each step of the campaign; ✕ how many callers hung up there.",
    download: "Download",
    download_csv: "Answers (CSV)",
    download_floip: "Flow results (FLOIP)",
    on_air: "On air",
    on_air_board: "On-air board",
    live: "live",
    reconnecting: "reconnecting…",
    recordings: "Voice messages",
    no_recordings: "No voice message yet.",
    note: "Note or transcript",
    picked: "Picked for the next programme",
    save: "Save",
    saved: "Saved.",
    seconds: "s",
    language: "Language",
    simulator: "Try the call",
    simulator_help: "Hear the campaign as a listener does: start a call, listen, and press keys. Nothing is stored.",
    start_call: "Call",
    hang_up: "Hang up",
    call_ended: "The call ended",
    no_answer_key: "Wait (no key)",
    question: "Question",
    needs_js: "The simulator needs JavaScript.",
    sim_at: "Pretend the call happens at (empty: now)",
    skip: "Skip",
    sim_answer: "answer (not stored)",
    sim_transfer: "transfer to",
    sim_helpline_answers: "The helpline answers",
    sim_helpline_fails: "No answer",
    sim_recording: "Recording your message…",
    sim_stop_recording: "Stop recording",
    callbacks: "Call-backs",
    callbacks_help: "Listeners who beep the call-back number, and subscribers after a broadcast, are called back; after a busy line, no answer or a failure kuma tries again later. Listeners are shown by pseudonym; times are in the campaign's time zone ({tz}).",
    callbacks_total: "Call-backs",
    attempts: "attempts",
    missed_calls: "missed calls",
    after_broadcast: "after a broadcast",
    no_callbacks: "No call-back yet.",
    latest_callbacks: "The latest {n}",
    caller: "Listener",
    status: "Status",
    next_try: "Next try",
    tries: "Tries",
    statuses: [
        "queued",
        "dialling",
        "answered",
        "busy",
        "no answer",
        "failed",
        "cancelled",
        "refused",
    ],
};

pub static FR: Strings = Strings {
    days: [
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    ],
    months: [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
    colon: "\u{a0}: ",
    campaigns: "Campagnes",
    log_in: "Se connecter",
    log_out: "Se déconnecter",
    token: "Jeton",
    token_help: "Collez le jeton qui vous a été remis (kuma token create). Il reste dans ce navigateur seulement, dans un cookie.",
    bad_token: "Ce jeton est inconnu ou a été révoqué.",
    forbidden: "Votre jeton ne donne pas accès à cette page.",
    not_found: "Il n'y a rien ici.",
    bad_request: "Cette demande n'est pas correcte :",
    internal: "Le serveur a rencontré un problème ; réessayez dans un instant.",
    back: "Retour aux campagnes",
    no_campaign: "Pas encore de campagne.",
    problems: "Fichiers de campagne avec des problèmes",
    poll_open: "Le sondage est ouvert",
    poll_closed: "Le sondage est fermé",
    next_broadcasts: "Prochaines émissions",
    calls: "Appels",
    completed: "complets",
    answered: "réponses",
    results: "Résultats",
    breakdown_by: "Ventiler par",
    nobody: "(aucune)",
    broadcast: "Émission",
    all_broadcasts: "Toutes les émissions",
    show: "Afficher",
    small_group_note: "Les groupes de moins de {n} personnes sont affichés <{n}, et * cache un groupe plus grand là où les totaux trahiraient un petit, pour que personne ne puisse être reconnu.",
    too_few_calls: "Moins de {n} appels correspondent : aucun nombre n'est affiché, pour que personne ne puisse être reconnu.",
    languages: "Langues",
    calls_per_hour: "Appels par heure autour de chaque émission",
    calls_per_hour_help: "De 2 heures avant l'émission à 22 heures après, à l'heure de la campagne. La barre foncée est l'heure de l'émission.",
    no_broadcast_yet: "Aucune émission n'a encore d'appels.",
    funnel: "Où les auditeurs s'arrêtent",
    funnel_help: "Combien d'appels ont atteint chaque étape de la campagne ; ✕ combien d'auditeurs y ont raccroché.",
    download: "Télécharger",
    download_csv: "Réponses (CSV)",
    download_floip: "Résultats du parcours (FLOIP)",
    on_air: "À l'antenne",
    on_air_board: "Tableau d'antenne",
    live: "en direct",
    reconnecting: "reconnexion…",
    recordings: "Messages vocaux",
    no_recordings: "Pas encore de message vocal.",
    note: "Note ou transcription",
    picked: "Retenu pour la prochaine émission",
    save: "Enregistrer",
    saved: "Enregistré.",
    seconds: "s",
    language: "Langue",
    simulator: "Essayer l'appel",
    simulator_help: "Écoutez la campagne comme un auditeur : lancez un appel, écoutez, appuyez sur les touches. Rien n'est enregistré.",
    start_call: "Appeler",
    hang_up: "Raccrocher",
    call_ended: "L'appel est terminé",
    no_answer_key: "Attendre (aucune touche)",
    question: "Question",
    needs_js: "Le simulateur a besoin de JavaScript.",
    sim_at: "Faire comme si l'appel avait lieu le (vide : maintenant)",
    skip: "Passer",
    sim_answer: "réponse (non enregistrée)",
    sim_transfer: "transfert vers",
    sim_helpline_answers: "La ligne d'aide répond",
    sim_helpline_fails: "Pas de réponse",
    sim_recording: "Enregistrement de votre message…",
    sim_stop_recording: "Arrêter l'enregistrement",
    callbacks: "Rappels",
    callbacks_help: "Les auditeurs qui bipent le numéro de rappel, et les abonnés après une émission, sont rappelés ; si la ligne est occupée, sans réponse ou en échec, kuma réessaie plus tard. Les auditeurs sont désignés par un pseudonyme ; les heures sont celles de la campagne ({tz}).",
    callbacks_total: "Rappels",
    attempts: "tentatives",
    missed_calls: "appels manqués",
    after_broadcast: "après une émission",
    no_callbacks: "Pas encore de rappel.",
    latest_callbacks: "Les {n} derniers",
    caller: "Auditeur",
    status: "État",
    next_try: "Prochain essai",
    tries: "Essais",
    statuses: [
        "en attente",
        "appel en cours",
        "répondu",
        "occupé",
        "pas de réponse",
        "échec",
        "annulé",
        "refusé",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn accept_language_picks_the_preferred_of_fr_and_en() {
        assert_eq!(
            Lang::from_accept_language("fr-ML,fr;q=0.9,en;q=0.8"),
            Some(Lang::Fr)
        );
        assert_eq!(
            Lang::from_accept_language("bm, en;q=0.5, fr;q=0.4"),
            Some(Lang::En)
        );
        assert_eq!(Lang::from_accept_language("de, fr;q=0"), None);
        assert_eq!(Lang::from_accept_language(""), None);
    }

    #[test]
    fn dates_and_numbers_in_words() {
        let at = chrono_tz::Africa::Bamako
            .with_ymd_and_hms(2026, 12, 1, 19, 0, 0)
            .unwrap();
        assert_eq!(Lang::Fr.date_time(at), "mardi 1 décembre 2026, 19:00");
        assert_eq!(Lang::En.date_time(at), "Tuesday 1 December 2026, 19:00");
        assert_eq!(Lang::En.number(1234567), "1,234,567");
        assert_eq!(Lang::Fr.number(1234), "1\u{202f}234");
        assert_eq!(Lang::En.number(999), "999");
    }
}
