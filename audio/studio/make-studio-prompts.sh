#!/usr/bin/env bash
# Rebuilds kuma's own prompts for the studio line (broadcasters recording
# prompts by phone, `studio_numbers` in kuma.toml) into
# audio/studio/<lang>/<prompt>.wav, with a <prompt>.txt transcript beside each.
# Everything in audio/studio/fr and audio/studio/en is deleted and made again.
#
# The files are built into the kuma binary (src/serve/studio_line.rs), so that
# the studio line works wherever kuma is installed; nothing is generated at run
# time. They are 8 kHz mono µ-law WAV (8 KB a second), the phone's own format,
# to keep the repository small.
#
# Needs: espeak-ng sox (apt-get install -y espeak-ng sox)
# Usage: audio/studio/make-studio-prompts.sh      (from anywhere)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SPEED=155

for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "make-studio-prompts: $tool is missing: apt-get install -y espeak-ng sox" >&2
    exit 1
  }
done

declare -A FR EN
FR[welcome]="Studio kuma. Tapez votre code secret à six chiffres, puis dièse."
EN[welcome]="kuma studio. Enter your six-digit PIN, then hash."
FR[wrong_pin]="Ce code n'est pas le bon."
EN[wrong_pin]="That PIN is not right."
FR[locked]="Trop d'essais. Cette ligne vous est fermée pour le moment."
EN[locked]="Too many tries. This line is closed to you for now."
FR[no_campaign]="Aucune campagne n'est ouverte à ce code."
EN[no_campaign]="No campaign is open to this PIN."
FR[choose_campaign]="Choisissez la campagne."
EN[choose_campaign]="Choose the campaign."
FR[choose_language]="Choisissez la langue."
EN[choose_language]="Choose the language."
FR[choose_prompt]="Choisissez le message à enregistrer."
EN[choose_prompt]="Choose the prompt to record."
FR[press]="Tapez"
EN[press]="Press"
FR[more]="Pour la suite, tapez zéro."
EN[more]="For more, press zero."
FR[back]="Pour revenir, tapez étoile."
EN[back]="To go back, press star."
FR[current]="Voici le message tel que les auditeurs l'entendent."
EN[current]="Here is the prompt as callers hear it now."
FR[record_menu]="Pour l'enregistrer à nouveau, tapez 1. Pour le réécouter, tapez 2. Pour revenir, tapez 3."
EN[record_menu]="To record it again, press 1. To hear it again, press 2. To go back, press 3."
FR[after_beep]="Parlez après le bip. Tapez dièse quand vous avez fini."
EN[after_beep]="Speak after the beep. Press hash when you are done."
FR[listen_back]="Voici votre enregistrement."
EN[listen_back]="Here is your recording."
FR[keep_menu]="Pour le garder, tapez 1. Pour recommencer, tapez 2. Pour revenir sans le garder, tapez 3."
EN[keep_menu]="To keep it, press 1. To record again, press 2. To go back without keeping it, press 3."
FR[saved]="C'est enregistré. Les nouveaux appels l'entendront."
EN[saved]="Saved. New calls will hear it."
FR[not_saved]="Cet enregistrement n'est pas gardé : il est vide, silencieux ou trop long. L'ancien reste."
EN[not_saved]="This recording was not kept: it is empty, silent or too long. The old one stays."
FR[invalid]="Cette touche ne fait rien ici."
EN[invalid]="That key does nothing here."
FR[goodbye]="Au revoir."
EN[goodbye]="Goodbye."
FR_DIGITS=(un deux trois quatre cinq six sept huit neuf)
EN_DIGITS=(one two three four five six seven eight nine)
for i in 1 2 3 4 5 6 7 8 9; do
  FR[d$i]="${FR_DIGITS[$((i - 1))]}"
  EN[d$i]="${EN_DIGITS[$((i - 1))]}"
done

make() { # lang voice name text
  local dir="$HERE/$1" tmp
  tmp="$(mktemp --suffix .wav)"
  espeak-ng -v "$2" -s "$SPEED" -w "$tmp" "$4"
  # 8 kHz mono µ-law, trimmed of the synthesiser's leading and trailing silence.
  sox "$tmp" -r 8000 -c 1 -e u-law -b 8 "$dir/$3.wav" silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
  rm -f "$tmp"
  printf '%s\n' "$4" >"$dir/$3.txt"
}

for lang in fr en; do
  rm -rf "${HERE:?}/$lang"
  mkdir -p "$HERE/$lang"
done
for name in "${!FR[@]}"; do
  make fr fr "$name" "${FR[$name]}"
  make en en-gb "$name" "${EN[$name]}"
done
echo "make-studio-prompts: $(find "$HERE" -name '*.wav' | wc -l) prompts, $(du -sh "$HERE" | cut -f1)"
