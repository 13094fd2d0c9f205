#!/usr/bin/env bash
# Rebuilds the recordings of the example campaign campaigns/stop-trafficking-mali.toml
# into audio/stop-trafficking-mali/<lang>/<prompt>.<wav|mp3|ogg> with a <prompt>.txt
# transcript beside each one. Everything in that folder is deleted and made again.
#
# French (fr) is synthesised with espeak-ng. Bambara (bm) and Soninke (snk) have no
# espeak voice: their files are clearly marked placeholders, spoken by the French
# voice ("Enregistrement en bambara à venir." then the French text) so the call flow
# can be tested, until the station records them (see audio/README.md).
#
# The formats are deliberately mixed (WAV at several rates, one of them 44.1 kHz
# stereo, MP3, Ogg Vorbis), as stations deliver them, to show that kuma copes.
# The output is reproducible: the same tools give the same bytes on every run.
#
# Needs: espeak-ng sox lame ffmpeg (Debian/Ubuntu:
#   apt-get update && apt-get install -y espeak-ng sox lame ffmpeg libsox-fmt-all)
# Usage: audio/make-example-prompts.sh      (from anywhere)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE/stop-trafficking-mali"
VOICE="fr"
SPEED=150

for tool in espeak-ng sox lame ffmpeg; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "make-example-prompts: $tool is missing; install it with:" >&2
    echo "  apt-get update && apt-get install -y espeak-ng sox lame ffmpeg libsox-fmt-all" >&2
    exit 1
  fi
done

# ---------------------------------------------------------------------------
# The French texts, written from the story "Mali: Raising awareness to prevent
# human trafficking" (Farm Radio International, February 2023).
# Survivors may be listening: never blame the person who was deceived; the call
# and the answers are anonymous.
# Digits are read out exactly as the choices in the campaign file.
# ---------------------------------------------------------------------------
declare -A TEXT

TEXT[welcome]="Bienvenue sur la ligne de l'émission contre la traite des personnes. \
Votre appel et vos réponses sont anonymes : nous ne vous demandons pas votre nom. \
Si vous avez été trompé ou exploité, ce n'est pas de votre faute."

TEXT[main_menu]="Pour écouter le message, tapez 1. \
Pour répondre au sondage, tapez 2. \
Pour laisser un message, tapez 3. \
Pour parler à un conseiller de la ligne d'aide, tapez 4. \
Pour terminer, tapez 0. \
Pour réécouter, tapez étoile."

TEXT[recruiters]="Des recruteurs promettent un travail bien payé, loin de chez soi : \
en ville, sur un site d'orpaillage ou à l'étranger. Ils proposent même de payer le voyage. \
Mais à l'arrivée, le travail promis n'existe pas, et la personne se retrouve prise au piège. \
Avant de partir, parlez de l'offre à votre famille et à des personnes de confiance."

TEXT[debt_bondage]="Une fois sur place, on dit souvent à la personne qu'elle doit rembourser \
le voyage et le logement. Cette dette ne finit jamais, et on la force à travailler, \
parfois à se prostituer. C'est un crime : au Mali, la loi punit la traite de cinq à vingt ans \
de prison. La faute est celle du trafiquant, jamais celle de la victime."

TEXT[warning_signs]="Voici des signes d'alerte, selon l'Organisation internationale pour les migrations : \
une personne qui semble avoir peur, qui ne veut pas parler, qui n'a pas de papiers d'identité, \
qui vit chez son employeur, ou qui ne sait pas où elle se trouve. \
Si vous voyez ces signes, parlez-en à la ligne d'aide : tapez 4 au menu."

TEXT[poll_intro]="Voici un court sondage de cinq questions. \
Vos réponses sont anonymes. Répondez avec les touches de votre téléphone."

TEXT[q_offered_work]="Question 1. Vous, ou une personne proche, avez-vous reçu une offre de travail \
bien payé loin de chez vous, avec le voyage payé ? \
Oui, tapez 1. Non, tapez 2. Je ne sais pas, tapez 3."

TEXT[q_know_signs]="Question 2. Connaissez-vous les signes qui montrent qu'une personne \
est victime de la traite ? Oui, tapez 1. Non, tapez 2."

TEXT[q_would_report]="Question 3. Si vous pensiez qu'une personne est victime de la traite, \
le signaleriez-vous à la ligne d'aide ? \
Oui, tapez 1. Non, tapez 2. Je ne sais pas, tapez 3."

TEXT[q_gender]="Question 4. Vous êtes une femme, tapez 1. Vous êtes un homme, tapez 2."

TEXT[q_region]="Question 5. Dans quelle région vivez-vous ? \
Bamako, tapez 1. Kayes, tapez 2. Koulikoro, tapez 3. Sikasso, tapez 4. \
Ségou, tapez 5. Mopti, tapez 6. Autre région, tapez 7."

TEXT[poll_thanks]="Merci pour vos réponses. Les résultats seront donnés pendant la prochaine émission."

TEXT[poll_closed]="Le sondage est fermé. Il rouvre après la prochaine émission."

TEXT[leave_message]="Laissez un message pour l'émission : une question, un avis ou votre histoire. \
Vous n'avez pas à dire votre nom. Après le bip, parlez. Tapez dièse quand vous avez fini."

TEXT[message_thanks]="Merci, votre message est enregistré. L'équipe de l'émission va l'écouter."

TEXT[connecting]="Nous vous mettons en relation avec un conseiller de la ligne d'aide. Restez en ligne."

TEXT[helpline_unavailable]="Désolé, aucun conseiller n'est disponible pour le moment. \
Merci de rappeler plus tard."

TEXT[goodbye]="Merci de votre appel. Prenez soin de vous. Au revoir."

TEXT[invalid]="Ce choix n'existe pas."

TEXT[no_input]="Nous n'avons rien entendu."

# choose_language: the engine plays it in each language in turn, so each language
# names itself with its digit (its position in the campaign's `languages`).
declare -A CHOOSE=(
  [bm]="Pour le bambara, tapez 1."
  [fr]="Pour le français, tapez 2."
  [snk]="Pour le soninké, tapez 3."
)

# Placeholder languages: the spoken announcement (French) and the transcript marker.
declare -A PLACEHOLDER_SPOKEN=(
  [bm]="Enregistrement en bambara à venir."
  [snk]="Enregistrement en soninké à venir."
)
declare -A PLACEHOLDER_NAME=( [bm]="Bambara" [snk]="Soninke" )

# ---------------------------------------------------------------------------
# Which format each file is delivered in: one file per prompt per language.
#   wav16   WAV 16 kHz mono 16-bit        wav8   WAV 8 kHz mono 16-bit (telephone)
#   wav22   WAV 22.05 kHz mono 16-bit     wav44s WAV 44.1 kHz stereo 16-bit
#   mp3-48  MP3 44.1 kHz mono 48 kbit/s   mp3-32 MP3 22.05 kHz mono 32 kbit/s
#   ogg     Ogg Vorbis 22.05 kHz mono, quality 0 (ffmpeg)
#   ogg-sox Ogg Vorbis 16 kHz mono, quality 0 (sox)
# WAV is kept for short prompts only, to keep the repository small.
# ---------------------------------------------------------------------------
FORMATS='
# prompt                bm        fr        snk
choose_language         wav16     wav22     wav8
welcome                 mp3-32    ogg       mp3-48
main_menu               ogg       mp3-48    ogg-sox
recruiters              mp3-48    ogg-sox   ogg
debt_bondage            ogg-sox   mp3-32    mp3-32
warning_signs           ogg       mp3-48    mp3-48
poll_intro              mp3-32    ogg       ogg
q_offered_work          ogg       mp3-32    mp3-32
q_know_signs            mp3-48    ogg-sox   ogg
q_would_report          ogg       mp3-32    mp3-48
q_gender                wav8      ogg       mp3-32
q_region                mp3-32    ogg       ogg-sox
poll_thanks             ogg-sox   mp3-48    wav8
poll_closed             wav8      mp3-32    ogg
leave_message           mp3-48    ogg-sox   mp3-32
message_thanks          ogg       wav16     wav16
connecting              wav8      ogg       wav8
helpline_unavailable    mp3-32    wav16     ogg
goodbye                 wav8      wav16     wav16
invalid                 wav16     wav44s    wav16
no_input                wav16     wav44s    wav22
'
LANGS=(bm fr snk)

# encode SPEC SRC.wav DEST_WITHOUT_EXTENSION
encode() {
  local spec="$1" src="$2" dest="$3"
  case "$spec" in
    wav16)   sox -R "$src" -r 16000 -c 1 -b 16 "$dest.wav" ;;
    wav8)    sox -R "$src" -r 8000  -c 1 -b 16 "$dest.wav" ;;
    wav22)   sox -R "$src" -r 22050 -c 1 -b 16 "$dest.wav" ;;
    wav44s)  sox -R "$src" -r 44100 -c 2 -b 16 "$dest.wav" ;;
    mp3-48)  lame --silent --noreplaygain -m m -b 48 --resample 44.1 "$src" "$dest.mp3" ;;
    mp3-32)  lame --silent --noreplaygain -m m -b 32 --resample 22.05 "$src" "$dest.mp3" ;;
    ogg)     ffmpeg -nostdin -v error -y -i "$src" -ac 1 -ar 22050 -c:a libvorbis -q:a 0 \
               -fflags +bitexact -flags:a +bitexact -map_metadata -1 "$dest.ogg" ;;
    ogg-sox) sox -R "$src" -r 16000 -c 1 -C 0 "$dest.ogg" ;;
    *) echo "make-example-prompts: unknown format $spec" >&2; exit 1 ;;
  esac
}

# Build in a scratch folder, then replace the old folder in one move.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/stop-trafficking-mali"
for lang in "${LANGS[@]}"; do mkdir -p "$STAGE/$lang"; done

count=0
while read -r prompt bm fr snk; do
  [[ -z "$prompt" || "$prompt" == \#* ]] && continue
  declare -A spec=( [bm]="$bm" [fr]="$fr" [snk]="$snk" )
  for lang in "${LANGS[@]}"; do
    if [[ "$prompt" == choose_language ]]; then
      french="${CHOOSE[$lang]}"
    else
      french="${TEXT[$prompt]:?no text for prompt $prompt}"
    fi
    french="$(printf '%s' "$french" | tr -s ' ')"
    if [[ "$lang" == fr ]]; then
      spoken="$french"
      transcript="$french"
    else
      spoken="${PLACEHOLDER_SPOKEN[$lang]} $french"
      transcript="PLACEHOLDER: to be recorded in ${PLACEHOLDER_NAME[$lang]} by the station
$french"
    fi
    raw="$WORK/raw.wav"
    espeak-ng -v "$VOICE" -s "$SPEED" -w "$raw" -- "$spoken"
    encode "${spec[$lang]}" "$raw" "$STAGE/$lang/$prompt"
    printf '%s\n' "$transcript" > "$STAGE/$lang/$prompt.txt"
    count=$((count + 1))
  done
done <<< "$FORMATS"

rm -rf "$OUT"
mv "$STAGE" "$OUT"
echo "make-example-prompts: $count recordings written to $OUT"
