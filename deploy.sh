#!/usr/bin/env bash
# Deploys "dunning by text" to Google Cloud and makes it live: the secrets, Pub/Sub topics,
# service accounts, IAM grants, the ingest (HTTP) and recover (Pub/Sub) functions, the
# quiet-hours release, the Linq intake (HTTP) and its subscriber, the dead-letter policies, the
# log-based metrics and dashboard of monitoring/, then the Stripe webhook endpoints (the
# platform's, and a Connect one while connected accounts are served) and the Linq webhook
# subscription of the two intakes (tools/go_live.py), which are deployed again pinned to the
# signing secrets those return.
#
#   STRIPE_API_KEY=... LINQ_API_KEY=... ./deploy.sh --project P --region R [--dry-run]
#
# Idempotent: every resource is created only when missing, IAM bindings are added (a no-op when
# present), a function is redeployed only when its staged code, requirements or deploy flags
# changed (a hash of them is kept in the function's `deploy-hash` label), and the endpoints and
# the subscription are found by their URLs: a second run changes nothing and rotates nothing. The
# keys are checked with Stripe and Linq before anything is created. A secret's value is never
# printed and never on a command line. Run ./deploy.sh --help for the variables it reads.
set -euo pipefail

# ---- Tunables ------------------------------------------------------------------------------------
RUNTIME=python313 # GA until 2029-10-10; google-cloud-pubsub needs Python >= 3.10.

# ingest: verifies the signature and publishes; the publish is bounded at 4 s, retries included
# (TOTAL_TIMEOUT_S, shared/adapters/publisher.py), so 30 s covers a cold start plus the whole
# publish budget.
INGEST_TIMEOUT_S=30
INGEST_MEMORY=256Mi # the default; one small request at a time.
# One request per instance: a concurrency above 1 needs --cpu=1 (6x the CPU of 256Mi) and THREADS;
# failed-payment webhooks are few and each takes milliseconds, so isolation is cheaper.
INGEST_CONCURRENCY=1
# At most 20 webhooks in flight; beyond that Cloud Run answers 429 and Stripe retries later.
INGEST_MAX_INSTANCES=20

# recover: one Stripe read, a Linq reachability check and two sends, each with its own timeout.
# Its timeout, RECOVER_TIMEOUT_S, is declared with the ledger lease that must outlive it
# (shared/core/lease.py), and comes from tools/deploy_env.py below.
# Ack deadline of the Eventarc subscription: the push request's timeout. It must stay above
# RECOVER_TIMEOUT_S, or Pub/Sub redelivers a message while its first run is still going.
ACK_DEADLINE_S=300
RECOVER_MEMORY=256Mi # a single in-flight request needs little memory.
RECOVER_CONCURRENCY=1 # one message per instance: max instances is then the parallelism cap.
# Each run makes one Stripe request (GET invoice). With 50 ms per external call a run lasts ~0.23 s,
# so an instance can ask Stripe for ~4.3 requests/s: 4 instances peaked at 18-19/s with no 429 in
# ./dev bench (2,000 events), 8 reached 31/s. Keep max instances x concurrency at 4 (BENCHMARKS.md).
RECOVER_MAX_INSTANCES=4

# release: the quiet-hours sweep (shared/workflow/release.py). One instance at a time is plenty
# (a morning's thousand entries are released in seconds), and an overlap would be harmless.
RELEASE_SCHEDULE="*/5 * * * *" # every five minutes: a deferred text waits at most that long
RELEASE_TIMEOUT_S=120
RELEASE_MEMORY=256Mi
RELEASE_MAX_INSTANCES=1

# linq intake: verifies the Standard Webhooks signature and publishes, like the Stripe intake.
LINQ_INTAKE_MAX_INSTANCES=10
# linq events: one Firestore write or two and maybe a Slack note per event.
LINQ_EVENT_TIMEOUT_S=60
LINQ_EVENT_MAX_INSTANCES=4

# Dead-lettering and backoff on the Eventarc subscriptions.
MAX_DELIVERY_ATTEMPTS=10 # then the message goes to the dead-letter topic (Pub/Sub allows 5..100).
MIN_RETRY_DELAY=10s      # exponential backoff between redeliveries, from...
MAX_RETRY_DELAY=600s     # ...to (Pub/Sub's maximum).
DLQ_RETENTION=7d         # how long dead letters stay in the pull subscription (max 31d).

# The send ledger (shared/adapters/ledger.py): a Firestore database of its own (FIRESTORE_DATABASE,
# in FIRESTORE_LOCATION), whose records in LEDGER_COLLECTION expire through a TTL policy.
LEDGER_TTL_FIELD=expire_at

# ---- Names ---------------------------------------------------------------------------------------
INGEST_FN=dunning-ingest
RECOVER_FN=dunning-recover
RELEASE_FN=dunning-release
SWEEP_JOB=dunning-release-sweep
LINQ_INTAKE_FN=dunning-linq-intake
LINQ_EVENT_FN=dunning-linq-events
LINQ_INTAKE_SA_NAME=dunning-linq-intake
LINQ_EVENT_SA_NAME=dunning-linq-events
INGEST_SA_NAME=dunning-ingest
RECOVER_SA_NAME=dunning-recover
RELEASE_SA_NAME=dunning-release
TRIGGER_SA_NAME=dunning-trigger
BUILD_SA_NAME=dunning-build
# What Cloud Build needs to build a function from source, and no more (Cloud Functions docs,
# "Custom service account for Cloud Build"), each on the one resource it is for: read the
# uploaded source in the bucket Cloud Functions (2nd gen) keeps it in, push the image to the
# repository it builds into, write build logs. Builds run as this account, not the default
# compute one. Logs are written into a project, the narrowest place Logs Writer is granted.
SOURCE_BUCKET_PREFIX=gs://gcf-v2-sources # + -PROJECT_NUMBER-REGION, as Cloud Functions names it
IMAGE_REPOSITORY=gcf-artifacts           # in the functions' region
WEBHOOK_SECRET=stripe-webhook-secret
CONNECT_HOOK_SECRET=stripe-connect-webhook-secret # the Connect endpoint's
SLACK_SECRET=slack-webhook-url
LINQ_HOOK_SECRET=linq-webhook-secret
DASHBOARD_NAME="Dunning by text" # displayName in monitoring/dashboard.json
APIS=(cloudfunctions.googleapis.com run.googleapis.com eventarc.googleapis.com
  pubsub.googleapis.com secretmanager.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com firestore.googleapis.com iam.googleapis.com
  cloudscheduler.googleapis.com logging.googleapis.com monitoring.googleapis.com)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python} # the environment CI tested: ./dev setup makes it
export CLOUDSDK_CORE_DISABLE_PROMPTS=1

usage() {
  cat <<'EOF'
Usage: STRIPE_API_KEY=... LINQ_API_KEY=... deploy.sh --project PROJECT --region REGION [--dry-run]

Deploys everything, creates the Stripe webhook endpoint (and a Connect one while connected
accounts are served) and the Linq webhook subscription of the two intakes, stores their signing
secrets in Secret Manager and deploys the intakes again pinned to them; run again, it changes
nothing. Needs gcloud's credentials and Application Default
Credentials (gcloud auth application-default login) for Secret Manager.

  --project P   Google Cloud project (else $GOOGLE_CLOUD_PROJECT or $CLOUDSDK_CORE_PROJECT)
  --region R    region of the functions (else $REGION or $CLOUDSDK_FUNCTIONS_REGION)
  --dry-run     print every gcloud command, and every Stripe and Linq call (as curl, keys
                masked), instead of running it; lookups print too and return placeholders, every
                resource is assumed missing, and every secret that is not made from a value
                present
  -h, --help    this help

Environment (each one read as the function that reads it will, before anything is created;
the list is tools/deploy_env.py's, from shared/workflow/settings.py):
  STRIPE_API_KEY                Stripe secret or restricted key (sk_..., rk_...). deploy.sh deploys
                                it from a secret: the one an sm:// reference names, else
                                stripe-api-key, made from the value when missing; it checks the key
                                with Stripe before anything is created and manages the webhook
                                endpoint with it, so a restricted key needs the Webhook Endpoints
                                write permission too (recover, deploy.sh; default: required)
  STRIPE_CONNECT_ACCOUNTS       the Stripe Connect accounts whose failed payments are texted,
                                besides the platform's own: * for every connected account, or
                                account ids separated by commas (acct_1A2b3C,acct_4D5e6F). Any other
                                connected account's event is acknowledged, never queued, with a
                                skipped:account_not_enabled result line. Set, deploy.sh makes a
                                Connect endpoint (connect=true) for the ingest function beside the
                                platform's own (ingest, deploy.sh; default: none: the platform's own
                                invoices only)
  WEBHOOK_BODY_SECONDS          how long an intake waits for a webhook's body once its headers are
                                in, in seconds (more than 0, at most 15: the body, the secret and
                                the publish fit the intake's 30 s); a body not whole by then is
                                answered 408 and its connection closed (ingest, linq-intake;
                                default: 10)
  LINQ_API_KEY                  Linq partner API token. deploy.sh deploys it from a secret: the one
                                an sm:// reference names, else linq-api-key, made from the value
                                when missing; it checks the token with Linq before anything is
                                created and subscribes the Linq intake with it (recover, deploy.sh;
                                default: required)
  GOOGLE_CLOUD_PROJECT          project of the topic (ingest, backfill) and of the send ledger
                                (recover); deploy.sh's project when --project is not given (ingest,
                                recover, release, linq-intake, linq-events, deploy.sh; default:
                                required)
  STRIPE_API_BASE               Stripe API base URL; https:// (plain http:// only for 127.0.0.1 and
                                localhost, where the stand-ins run) (recover, deploy.sh; default:
                                https://api.stripe.com)
  LINQ_API_BASE                 Linq API base URL, without a trailing /v3; https:// (plain http://
                                only for 127.0.0.1 and localhost) (recover, deploy.sh; default:
                                https://api.linqapp.com/api/partner)
  FIRESTORE_DATABASE            Firestore database (native mode) holding the send ledger (recover,
                                release, linq-events, deploy.sh; default: dunning)
  PUBSUB_TOPIC                  topic id failed payments are published to (and deferred ones
                                re-published to) (ingest, release, deploy.sh; default:
                                stripe-payment-failed)
  LINQ_SENDER                   E.164 line every text goes out from, whatever its health or count
                                (LINQ_LINE_DAILY_LIMIT does not apply to it) (recover; default: each
                                customer's own line: a stable hash of their number over the usable
                                lines)
  LINQ_LINE_DAILY_LIMIT         how many messages a line may send in a UTC day (each text and each
                                link is one, counted in Firestore) before new texts go out from the
                                customer's next line; the link of a text already sent and a resumed
                                plan keep their line. 1 to 700,000 (recover; default: 7000 (Linq's
                                recommended ceiling per line per day, inbound and outbound))
  DEFAULT_PHONE_REGION          region for numbers written without a country code (recover; default:
                                US (the customer's address country wins))
  MESSAGE_TEMPLATE              the text; placeholders {first_name} {description} {amount} {brand};
                                must contain STOP, no {url}, no URL, and fit in 319 characters with
                                BRAND_NAME and the longest amount Stripe accepts in any currency
                                (IDR 9,999,999,999.99, 20 characters) (recover; default: the
                                built-in text (the branded one when BRAND_NAME is set))
  MESSAGE_TEMPLATE_<LANG>       the text for customers whose first preferred locale is in language
                                <LANG>, a two- or three-letter ISO 639 code in upper case
                                (MESSAGE_TEMPLATE_ES); checked like MESSAGE_TEMPLATE (recover;
                                default: MESSAGE_TEMPLATE)
  ACTION_TEMPLATE               the text when the invoice's latest payment waits for the customer to
                                confirm it (3-D Secure: its PaymentIntent is requires_action); the
                                same placeholders and checks as MESSAGE_TEMPLATE (recover; default:
                                the built-in 3-D Secure text (the branded one when BRAND_NAME is
                                set))
  ACTION_TEMPLATE_<LANG>        the 3-D Secure text for customers whose first preferred locale is in
                                language <LANG> (ACTION_TEMPLATE_ES); checked like MESSAGE_TEMPLATE
                                (recover; default: MESSAGE_TEMPLATE_<LANG> of that language, else
                                ACTION_TEMPLATE)
  BRAND_NAME                    who is writing, for {brand}: at most 40 characters, not a URL or a
                                domain (Linq's first-message rule) (recover; default: none; a
                                template with {brand} then fails to start)
  TEXT_ON_ATTEMPTS              which failed attempts get a text: all, or attempt numbers such as
                                1,3; the others end as skipped:policy (recover; default: all (one
                                text per failed payment))
  DRY_RUN                       true: decide everything, send nothing, record nothing, log dry_run
                                lines (true/false, 1/0, yes/no) (recover; default: false)
  QUIET_HOURS                   the window, in the recipient's local time, in which nothing is sent:
                                HH:MM-HH:MM (may cross midnight; HH:MM:SS to the second), or off; a
                                failure inside it is deferred to the window's end
                                (deferred:quiet_hours) and sent then if it still should be (recover;
                                default: 21:00-08:00 (US rules for such messages: 08:00-21:00
                                local))
  HOLDOUT_PERCENT               the share of failed payments kept untexted to measure what the texts
                                cause (skipped:holdout), 0 to 50; chosen by a stable hash of the
                                invoice id, so an invoice stays in its group across attempts and
                                replays (recover; default: 0)
  LEASE_SECONDS                 how long a run owns a failed payment before another may take it over
                                (the ledger lease), in whole seconds up to 3600; deploy.sh refuses
                                one that is not longer than the recover function's timeout (120 s),
                                so no run outlives its lease (recover; default: 180)
  SURGE_MIN                     the surge guard: how many failed payments within SURGE_WINDOW make
                                it ask Stripe how many payments succeeded meanwhile; when the failed
                                ones are more than SURGE_SHARE of all, texting pauses itself as
                                ./dev pause would (deferred:paused), and Slack is told. A whole
                                number up to 100,000, or off (recover; default: 50)
  SURGE_WINDOW                  the surge guard's window: minutes or hours such as 10m or 1h, from
                                1m to 24h (recover; default: 10m)
  SURGE_SHARE                   the surge guard's share: a surge is when more than this percentage
                                of the payments Stripe attempted in SURGE_WINDOW failed (1 to 99)
                                (recover; default: 50)
  LINQ_EVENTS_TOPIC             topic id verified Linq webhooks are published to (linq-intake,
                                deploy.sh; default: linq-events)
  REGION                        the functions' region when --region is not given (deploy.sh;
                                default: CLOUDSDK_FUNCTIONS_REGION)
  CLOUDSDK_FUNCTIONS_REGION     gcloud's region of functions: the region when neither --region nor
                                REGION is given (deploy.sh; default: unset)
  CLOUDSDK_CORE_PROJECT         gcloud's project: the project when neither --project nor
                                GOOGLE_CLOUD_PROJECT is given (deploy.sh; default: unset)
  FIRESTORE_LOCATION            where the send ledger's database is created (deploy.sh; default: the
                                functions' region)
  STRIPE_WEBHOOK_SECRET_VERSION the version of the secret deployed as STRIPE_WEBHOOK_SECRET to pin
                                (deploy.sh; default: the newest ENABLED one, never latest)
  STRIPE_CONNECT_WEBHOOK_SECRET_VERSION the version of the secret deployed as
                                STRIPE_CONNECT_WEBHOOK_SECRET to pin (deploy.sh; default: the newest
                                ENABLED one, never latest)
  STRIPE_API_KEY_VERSION        the version of the secret deployed as STRIPE_API_KEY to pin
                                (deploy.sh; default: the newest ENABLED one, never latest)
  LINQ_API_KEY_VERSION          the version of the secret deployed as LINQ_API_KEY to pin
                                (deploy.sh; default: the newest ENABLED one, never latest)
  SLACK_WEBHOOK_URL_VERSION     the version of the secret deployed as SLACK_WEBHOOK_URL to pin
                                (deploy.sh; default: the newest ENABLED one, never latest)
  LINQ_WEBHOOK_SECRET_VERSION   the version of the secret deployed as LINQ_WEBHOOK_SECRET to pin
                                (deploy.sh; default: the newest ENABLED one, never latest)
  SLACK                         1: the recover and Linq event functions get SLACK_WEBHOOK_URL from
                                the secret slack-webhook-url, which must exist; 0: never (deploy.sh;
                                default: when the secret exists)
  BUILD_DIR                     where the functions are staged (deploy.sh; default: build in the
                                checkout)
  PYTHON                        the checkout's environment, whose pinned packages are shipped
                                (deploy.sh; default: .venv/bin/python (./dev setup makes it))

Secrets: stripe-api-key and linq-api-key are made from the keys' values when missing (or are
the secrets their sm:// references name); stripe-webhook-secret, linq-webhook-secret and, while
connected accounts are served, stripe-connect-webhook-secret are made holding a placeholder, then
get the signing secrets Stripe and Linq return as new versions. The optional slack-webhook-url is
yours to create:
    printf %s "$VALUE" | gcloud secrets create slack-webhook-url --data-file=-
EOF
}

usage_error() {
  printf 'deploy.sh: %s\n' "$1" >&2
  printf 'usage: deploy.sh --project PROJECT --region REGION [--dry-run]   (--help for more)\n' >&2
  exit 2
}

die() {
  printf 'deploy.sh: error: %s\n' "$*" >&2
  exit 1
}

note() {
  printf '== %s\n' "$*" >&2
}

# ---- Arguments -----------------------------------------------------------------------------------
PROJECT=${GOOGLE_CLOUD_PROJECT:-${CLOUDSDK_CORE_PROJECT:-}}
REGION=${REGION:-${CLOUDSDK_FUNCTIONS_REGION:-}}
PRINT_ONLY=0 # --dry-run; not DRY_RUN, which is a setting of the recover function
while (($#)); do
  case $1 in
    --project | --region)
      (($# >= 2)) || usage_error "$1 needs a value"
      if [[ $1 == --project ]]; then PROJECT=$2; else REGION=$2; fi
      shift 2
      ;;
    --project=*) PROJECT=${1#*=} && shift ;;
    --region=*) REGION=${1#*=} && shift ;;
    --dry-run) PRINT_ONLY=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

missing=""
[[ -n $PROJECT ]] || missing="a project (--project P, or GOOGLE_CLOUD_PROJECT)"
if [[ -z $REGION ]]; then
  missing+="${missing:+ and }a region (--region R, or REGION)"
fi
[[ -z $missing ]] || usage_error "missing $missing"
[[ $PROJECT =~ ^[a-z0-9][a-z0-9.:-]*[a-z0-9]$ ]] || usage_error "not a project id: $PROJECT"
[[ $REGION =~ ^[a-z]+(-[a-z0-9]+)+$ ]] || usage_error "not a region: $REGION"

BUILD_DIR=${BUILD_DIR:-$ROOT/build}
INGEST_SA=$INGEST_SA_NAME@$PROJECT.iam.gserviceaccount.com
RECOVER_SA=$RECOVER_SA_NAME@$PROJECT.iam.gserviceaccount.com
RELEASE_SA=$RELEASE_SA_NAME@$PROJECT.iam.gserviceaccount.com
LINQ_INTAKE_SA=$LINQ_INTAKE_SA_NAME@$PROJECT.iam.gserviceaccount.com
LINQ_EVENT_SA=$LINQ_EVENT_SA_NAME@$PROJECT.iam.gserviceaccount.com
TRIGGER_SA=$TRIGGER_SA_NAME@$PROJECT.iam.gserviceaccount.com
BUILD_SA=$BUILD_SA_NAME@$PROJECT.iam.gserviceaccount.com
BUILD_SA_PATH=projects/$PROJECT/serviceAccounts/$BUILD_SA # the form --build-service-account takes
[[ -x $PYTHON ]] || command -v "$PYTHON" >/dev/null ||
  die "no Python environment at $PYTHON: run ./dev setup (or set PYTHON)"

# Every variable deploy.sh and the functions read, checked as they will read it (exit 2 if one is
# wrong); each function's plain ones go to BUILD_DIR/<function>.env.yaml, and the names the
# resources below are created with come back as shell assignments of these, with, for each key,
# its secret, how STRIPE_API_KEY / LINQ_API_KEY give it (value, reference or not at all) and the
# version to pin (STRIPE_API_KEY_VERSION / LINQ_API_KEY_VERSION, or the reference's); the
# placeholder a signing secret holds until the vendor's own is stored (the intake answers 503
# meanwhile and verifies nothing, so the sender retries); and whether connected accounts are
# served (STRIPE_CONNECT_ACCOUNTS: the ingest function then has a Connect endpoint too):
TOPIC="" LINQ_TOPIC="" FIRESTORE_DATABASE="" FIRESTORE_LOCATION="" RECOVER_TIMEOUT_S=""
LEDGER_COLLECTION="" LINQ_EVENTS_COLLECTION="" SWEEP_TOPIC="" STRIPE_KEY_SECRET=""
STRIPE_KEY_GIVEN="" LINQ_KEY_SECRET="" LINQ_KEY_GIVEN="" PLACEHOLDER="" CONNECT_SERVED=""
names=$(PYTHONPATH=$ROOT "$PYTHON" -m tools.deploy_env "$BUILD_DIR" "$PROJECT" "$REGION") || exit $?
eval "$names"
DLQ_TOPIC=$TOPIC-dead-letter
DLQ_SUB=$TOPIC-dead-letter-pull
LINQ_DLQ_TOPIC=$LINQ_TOPIC-dead-letter
LINQ_DLQ_SUB=$LINQ_TOPIC-dead-letter-pull
((RECOVER_TIMEOUT_S < ACK_DEADLINE_S)) ||
  die "RECOVER_TIMEOUT_S ($RECOVER_TIMEOUT_S) must stay below ACK_DEADLINE_S ($ACK_DEADLINE_S)"

# ---- Running gcloud ------------------------------------------------------------------------------
# Every gcloud command is shown as one shell-quoted line starting with "+ ": on stdout in a dry
# run (that is the plan), on stderr otherwise (that is the log).
if ((PRINT_ONLY)); then exec 3>&1; else exec 3>&2; fi

show() {
  local line="" arg
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      line+=" $arg"
    else
      line+=" '${arg//\'/\'\\\'\'}'"
    fi
  done
  printf '+%s\n' "$line" >&3
}

# run CMD...: a command that changes something.
run() {
  show "$@"
  if ((!PRINT_ONLY)); then "$@"; fi
}

# grant CMD...: an add-iam-policy-binding (a no-op when the binding exists), retried because a
# new service account takes a few seconds to become visible to IAM. --condition=None, where the
# resource supports conditions, keeps gcloud from asking when the policy has conditional bindings.
grant() {
  show "$@"
  ((PRINT_ONLY)) && return 0
  local attempt
  for attempt in 1 2 3 4 5; do
    "$@" >/dev/null && return 0
    ((attempt < 5)) && note "retrying in $((attempt * 5)) s" && sleep $((attempt * 5))
  done
  die "failed: $*"
}

# query PLACEHOLDER CMD...: a lookup whose output is needed; a dry run prints PLACEHOLDER instead.
query() {
  local placeholder=$1
  shift
  show "$@"
  if ((PRINT_ONLY)); then
    printf '%s\n' "$placeholder"
  else
    "$@"
  fi
}

# exists ASSUME CMD...: whether a describe command succeeds. A dry run answers ASSUME:
# "missing" for what this script creates, "present" for what it only reads (secrets).
exists() {
  local assume=$1
  shift
  show "$@"
  if ((PRINT_ONLY)); then
    [[ $assume == present ]]
  else
    "$@" >/dev/null 2>&1
  fi
}

# ---- Staging -------------------------------------------------------------------------------------
# stage: BUILD_DIR/ingest and BUILD_DIR/recover each get their function's main.py, the shared/
# modules it imports and a requirements.txt pinning every package it needs, transitive ones
# included, to the version in requirements-dev.lock with the hashes of its files, so Cloud Build's
# pip installs what CI installed, tested and `./dev audit` audits, and refuses any other file;
# nothing else (no tests, stand-ins, bench, pytest). The work is tools/stage.py's, which reads the
# installed packages' metadata: it runs with the checkout's environment (./dev setup).
stage() {
  PYTHONPATH=$ROOT "$PYTHON" -m tools.stage "$BUILD_DIR"
}

# deploy_hash DIR EXTRA...: a label-safe digest of DIR's files (names and contents) and EXTRA.
deploy_hash() {
  local dir=$1
  shift
  {
    (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    printf '%s\n' "$@"
  } | sha256sum | cut -c1-32
}

# deploy_function NAME DIR FLAGS...: deploys NAME from DIR unless its deploy-hash label already
# matches the staged files and the flags. An --env-vars-file counts by its content, not its local
# path, so another checkout does not redeploy for nothing.
deploy_function() {
  local name=$1 dir=$2 hash current arg hashed=()
  shift 2
  for arg in "$@"; do
    if [[ $arg == --env-vars-file=* ]]; then
      hashed+=("env:$(sha256sum <"${arg#*=}")")
    else
      hashed+=("$arg")
    fi
  done
  hash=$(deploy_hash "$dir" "${hashed[@]}")
  current=$(query '<none>' gcloud functions describe "$name" --region="$REGION" \
    --project="$PROJECT" '--format=value(labels.deploy-hash)' 2>/dev/null) || current=""
  if [[ $current == "$hash" ]]; then
    note "$name is up to date (deploy-hash $hash): not redeployed"
    return 0
  fi
  run gcloud functions deploy "$name" --gen2 --region="$REGION" --project="$PROJECT" \
    --source="$dir" "$@" --update-labels="deploy-hash=$hash"
}

# ---- Secrets -------------------------------------------------------------------------------------
# secret_version NAME VERSION_VARIABLE: sets VERSION to the pinned version of secret NAME, which
# exists: the variable's value if set (it must be ENABLED), else the newest ENABLED version.
VERSION=""
secret_version() {
  local name=$1 pinned=${!2:-} found state
  if [[ -n $pinned ]]; then
    state=$(query ENABLED gcloud secrets versions describe "$pinned" --secret="$name" \
      --project="$PROJECT" '--format=value(state)') || state=""
    [[ $state == ENABLED ]] ||
      die "version $pinned of secret $name is ${state:-missing}, not ENABLED"
    VERSION=$pinned
    return 0
  fi
  found=$(query '<latest-enabled>' gcloud secrets versions list "$name" --project="$PROJECT" \
    --filter=state:ENABLED '--sort-by=~createTime' --limit=1 '--format=value(name)')
  found=${found##*/}
  [[ -n $found ]] || die "secret $name has no ENABLED version. Add one with:
  printf %s \"\$VALUE\" | gcloud secrets versions add $name --project=$PROJECT --data-file=-"
  VERSION=$found
}

# make_secret NAME: creates secret NAME holding what comes on stdin, so that a value is never on
# a command line (ps shows those) nor printed. A dry run drains it instead: the pipe that feeds
# it never breaks.
make_secret() {
  run gcloud secrets create "$1" --project="$PROJECT" --replication-policy=automatic \
    --data-file=-
  ((!PRINT_ONLY)) || cat >/dev/null
}

# key_source NAME GIVEN VALUE VERSION_VARIABLE: the secret NAME a key is deployed from, looked up
# (nothing is made here). Sets KEY, the key the checks below use, which is the one the functions
# get: the pinned version of NAME (VERSION), or, when NAME is missing and the variable gives the
# key's value (GIVEN is "value"), that value (VERSION is then empty: NAME is made from it below).
KEY=""
key_source() {
  local name=$1 given=$2 value=$3 variable=${4%_VERSION} assume=present
  # A dry run shows a secret made from a value as made, the key masked.
  [[ $given != value ]] || assume=missing
  if exists "$assume" gcloud secrets describe "$name" --project="$PROJECT"; then
    secret_version "$name" "$4"
    KEY="sm://$PROJECT/$name#$VERSION"
    [[ $given != value ]] ||
      note "secret $name exists: the functions get its version $VERSION, not the value of" \
        "$variable (to change the key: printf %s \"\$$variable\" | gcloud secrets versions add" \
        "$name --project=$PROJECT --data-file=-)"
  elif [[ $given == value ]]; then
    KEY=$value VERSION=""
  elif [[ $given == reference ]]; then
    die "secret $name, which $variable names, does not exist in project $PROJECT (or you cannot read it)"
  else
    die "secret $name does not exist in project $PROJECT (or you cannot read it): set $variable" \
      "to the key, from which deploy.sh makes it, or to an sm:// reference to the secret that" \
      "holds it"
  fi
}

# go_live STEP ARGS...: tools/go_live.py, the keys the functions get in its environment (never
# on its command line); in a dry run it prints the calls it would make.
go_live() {
  local step=$1
  shift
  ((!PRINT_ONLY)) || set -- "$@" --dry-run
  STRIPE_API_KEY=$STRIPE_KEY LINQ_API_KEY=$LINQ_KEY GOOGLE_CLOUD_PROJECT=$PROJECT \
    PYTHONPATH=$ROOT "$PYTHON" -m tools.go_live "$step" "$@"
}

# ---- 1. The keys, checked with Stripe and Linq before anything is created -------------------------
note "Stripe and Linq keys"
key_source "$STRIPE_KEY_SECRET" "$STRIPE_KEY_GIVEN" "${STRIPE_API_KEY:-}" STRIPE_API_KEY_VERSION
STRIPE_KEY=$KEY STRIPE_KEY_VERSION=$VERSION
key_source "$LINQ_KEY_SECRET" "$LINQ_KEY_GIVEN" "${LINQ_API_KEY:-}" LINQ_API_KEY_VERSION
LINQ_KEY=$KEY LINQ_KEY_VERSION=$VERSION
# Stripe takes the key, which may manage webhook endpoints; Linq takes its token.
go_live check

# ---- 2. APIs -------------------------------------------------------------------------------------
note "project $PROJECT, region $REGION, topic $TOPIC"
run gcloud services enable "${APIS[@]}" --project="$PROJECT"

# ---- 3. Stage the two functions ------------------------------------------------------------------
stage
INGEST_DIR=$BUILD_DIR/ingest
RECOVER_DIR=$BUILD_DIR/recover

# ---- 4. Secrets: made when missing, and the versions to pin --------------------------------------
note "secrets"
# A key given as its value: its secret is made from it. The signing secrets start as the
# placeholder, until step 13 stores what Stripe and Linq return.
if [[ -z $STRIPE_KEY_VERSION ]]; then
  printf %s "$STRIPE_KEY" | make_secret "$STRIPE_KEY_SECRET"
  secret_version "$STRIPE_KEY_SECRET" STRIPE_API_KEY_VERSION
  STRIPE_KEY_VERSION=$VERSION
fi
if [[ -z $LINQ_KEY_VERSION ]]; then
  printf %s "$LINQ_KEY" | make_secret "$LINQ_KEY_SECRET"
  secret_version "$LINQ_KEY_SECRET" LINQ_API_KEY_VERSION
  LINQ_KEY_VERSION=$VERSION
fi
for name in "$WEBHOOK_SECRET" "$LINQ_HOOK_SECRET"; do
  exists missing gcloud secrets describe "$name" --project="$PROJECT" ||
    printf %s "$PLACEHOLDER" | make_secret "$name"
done
secret_version "$WEBHOOK_SECRET" STRIPE_WEBHOOK_SECRET_VERSION
WEBHOOK_VERSION=$VERSION
# The Connect endpoint's signing secret: made while connected accounts are served, and deployed
# whenever it exists, so that a Connect endpoint kept after they no longer are is still verified
# (its events are then acknowledged, never texted).
CONNECT_HOOK_VERSION=""
if [[ -n $CONNECT_SERVED ]]; then
  exists missing gcloud secrets describe "$CONNECT_HOOK_SECRET" --project="$PROJECT" ||
    printf %s "$PLACEHOLDER" | make_secret "$CONNECT_HOOK_SECRET"
fi
if [[ -n $CONNECT_SERVED ]] ||
  exists missing gcloud secrets describe "$CONNECT_HOOK_SECRET" --project="$PROJECT"; then
  secret_version "$CONNECT_HOOK_SECRET" STRIPE_CONNECT_WEBHOOK_SECRET_VERSION
  CONNECT_HOOK_VERSION=$VERSION
fi
RECOVER_SECRETS="STRIPE_API_KEY=$STRIPE_KEY_SECRET:$STRIPE_KEY_VERSION"
RECOVER_SECRETS+=",LINQ_API_KEY=$LINQ_KEY_SECRET:$LINQ_KEY_VERSION"
RECOVER_SECRET_NAMES=("$STRIPE_KEY_SECRET" "$LINQ_KEY_SECRET")
case ${SLACK:-} in
  1) use_slack=1 ;;
  0) use_slack=0 ;;
  "")
    use_slack=0
    exists missing gcloud secrets describe "$SLACK_SECRET" --project="$PROJECT" && use_slack=1
    ;;
esac
secret_version "$LINQ_HOOK_SECRET" LINQ_WEBHOOK_SECRET_VERSION
LINQ_HOOK_VERSION=$VERSION
# linq events: Slack only (replies, STOPs and line alerts go to the team).
LINQ_EVENT_SECRETS=""
if ((use_slack)); then
  exists present gcloud secrets describe "$SLACK_SECRET" --project="$PROJECT" ||
    die "secret $SLACK_SECRET does not exist in project $PROJECT (or you cannot read it), and" \
      "SLACK=1 asks for it. Create it with:
  printf %s \"\$VALUE\" | gcloud secrets create $SLACK_SECRET --project=$PROJECT --data-file=-"
  secret_version "$SLACK_SECRET" SLACK_WEBHOOK_URL_VERSION
  RECOVER_SECRETS+=",SLACK_WEBHOOK_URL=$SLACK_SECRET:$VERSION"
  RECOVER_SECRET_NAMES+=("$SLACK_SECRET")
  LINQ_EVENT_SECRETS="SLACK_WEBHOOK_URL=$SLACK_SECRET:$VERSION"
fi

# ---- 5. Topics: the trigger topics, and dead-letter topics with pull subscriptions ---------------
note "topics"
for topic in "$TOPIC" "$DLQ_TOPIC" "$SWEEP_TOPIC" "$LINQ_TOPIC" "$LINQ_DLQ_TOPIC"; do
  exists missing gcloud pubsub topics describe "$topic" --project="$PROJECT" ||
    run gcloud pubsub topics create "$topic" --project="$PROJECT"
done
# Without a subscription, dead-lettered messages would be dropped; these keep them
# DLQ_RETENTION and never expire for lack of activity.
for pair in "$DLQ_SUB:$DLQ_TOPIC" "$LINQ_DLQ_SUB:$LINQ_DLQ_TOPIC"; do
  exists missing gcloud pubsub subscriptions describe "${pair%%:*}" --project="$PROJECT" ||
    run gcloud pubsub subscriptions create "${pair%%:*}" --project="$PROJECT" \
      --topic="${pair#*:}" --message-retention-duration="$DLQ_RETENTION" --expiration-period=never
done

# ---- 6. Service accounts: one per function, one for the Eventarc trigger, one for builds ---------
note "service accounts"
for pair in "$INGEST_SA_NAME:dunning ingest (Stripe webhook)" \
  "$RECOVER_SA_NAME:dunning recover (texts the customer)" \
  "$RELEASE_SA_NAME:dunning release (hands deferred payments back)" \
  "$LINQ_INTAKE_SA_NAME:dunning Linq intake (Linq webhooks)" \
  "$LINQ_EVENT_SA_NAME:dunning Linq events (delivery, replies, STOP, lines)" \
  "$TRIGGER_SA_NAME:dunning trigger (Eventarc invoker)" \
  "$BUILD_SA_NAME:dunning build (Cloud Build of both functions)"; do
  sa=${pair%%:*}
  exists missing gcloud iam service-accounts describe "$sa@$PROJECT.iam.gserviceaccount.com" \
    --project="$PROJECT" ||
    run gcloud iam service-accounts create "$sa" --project="$PROJECT" --display-name="${pair#*:}"
done

# ---- 7. The send ledger: a Firestore database with a TTL policy ----------------------------------
note "Firestore send ledger"
exists missing gcloud firestore databases describe --database="$FIRESTORE_DATABASE" \
  --project="$PROJECT" ||
  run gcloud firestore databases create --database="$FIRESTORE_DATABASE" --project="$PROJECT" \
    --location="$FIRESTORE_LOCATION" --type=firestore-native --delete-protection
# The ledger's entries and the Linq webhook ids acted on both carry expire_at.
for group in "$LEDGER_COLLECTION" "$LINQ_EVENTS_COLLECTION"; do
  ttls=$(query '' gcloud firestore fields ttls list --collection-group="$group" \
    --database="$FIRESTORE_DATABASE" --project="$PROJECT" '--format=value(name)')
  if [[ $'\n'$ttls$'\n' != *"/fields/$LEDGER_TTL_FIELD"$'\n'* ]]; then
    run gcloud firestore fields ttls update "$LEDGER_TTL_FIELD" \
      --collection-group="$group" --database="$FIRESTORE_DATABASE" \
      --project="$PROJECT" --enable-ttl --async
  fi
done

# The release sweep's queries: deferred entries by due time, releases by age (state == X and
# time <= T needs a composite index).
indexes=$(query '' gcloud firestore indexes composite list --database="$FIRESTORE_DATABASE" \
  --project="$PROJECT" '--format=value(fields[].fieldPath)')
for field in due_at released_at; do
  if [[ $'\n'$indexes$'\n' != *$'\n'"state;$field"* ]]; then
    run gcloud firestore indexes composite create --collection-group="$LEDGER_COLLECTION" \
      --database="$FIRESTORE_DATABASE" --project="$PROJECT" --query-scope=collection \
      --field-config=field-path=state,order=ascending \
      --field-config="field-path=$field,order=ascending" --async
  fi
done

# ---- 8. IAM: least privilege for each function ---------------------------------------------------
note "IAM: least privilege for each function"
# ingest: publish to its topic, read the endpoints' signing secrets; nothing else.
grant gcloud pubsub topics add-iam-policy-binding "$TOPIC" --project="$PROJECT" \
  --member="serviceAccount:$INGEST_SA" --role=roles/pubsub.publisher
ingest_secrets=("$WEBHOOK_SECRET")
[[ -z $CONNECT_HOOK_VERSION ]] || ingest_secrets+=("$CONNECT_HOOK_SECRET")
for secret in "${ingest_secrets[@]}"; do
  grant gcloud secrets add-iam-policy-binding "$secret" --project="$PROJECT" \
    --member="serviceAccount:$INGEST_SA" --role=roles/secretmanager.secretAccessor \
    --condition=None
done
# recover: read its own secrets, and read and write the ledger's database only (Firestore roles
# are granted on the project; the condition narrows this one to the one database).
for secret in "${RECOVER_SECRET_NAMES[@]}"; do
  grant gcloud secrets add-iam-policy-binding "$secret" --project="$PROJECT" \
    --member="serviceAccount:$RECOVER_SA" --role=roles/secretmanager.secretAccessor --condition=None
done
ledger_only="expression=resource.name==\"projects/$PROJECT/databases/$FIRESTORE_DATABASE\""
grant gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$RECOVER_SA" \
  --role=roles/datastore.user --condition="$ledger_only,title=dunning-ledger-only"
# release: read and write the ledger, publish to the failed-payment topic; nothing else.
grant gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$RELEASE_SA" \
  --role=roles/datastore.user --condition="$ledger_only,title=dunning-ledger-only"
grant gcloud pubsub topics add-iam-policy-binding "$TOPIC" --project="$PROJECT" \
  --member="serviceAccount:$RELEASE_SA" --role=roles/pubsub.publisher
# linq intake: publish to the Linq events topic, read the subscription's signing secret.
grant gcloud pubsub topics add-iam-policy-binding "$LINQ_TOPIC" --project="$PROJECT" \
  --member="serviceAccount:$LINQ_INTAKE_SA" --role=roles/pubsub.publisher
grant gcloud secrets add-iam-policy-binding "$LINQ_HOOK_SECRET" --project="$PROJECT" \
  --member="serviceAccount:$LINQ_INTAKE_SA" --role=roles/secretmanager.secretAccessor \
  --condition=None
# linq events: read and write the ledger (deliveries, the opt-out list), read the Slack URL.
grant gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$LINQ_EVENT_SA" \
  --role=roles/datastore.user --condition="$ledger_only,title=dunning-ledger-only"
if ((use_slack)); then
  grant gcloud secrets add-iam-policy-binding "$SLACK_SECRET" --project="$PROJECT" \
    --member="serviceAccount:$LINQ_EVENT_SA" --role=roles/secretmanager.secretAccessor \
    --condition=None
fi
# build: read the functions' source, push their images, write build logs. Cloud Functions makes
# the bucket and the repository on its first deploy, which a build already needs them for: made
# here first, when missing, so that each grant has its resource.
PROJECT_NUMBER=$(query '<project-number>' gcloud projects describe "$PROJECT" \
  '--format=value(projectNumber)')
[[ -n $PROJECT_NUMBER ]] || die "could not read the project number of $PROJECT"
SOURCE_BUCKET=$SOURCE_BUCKET_PREFIX-$PROJECT_NUMBER-$REGION
exists missing gcloud storage buckets describe "$SOURCE_BUCKET" --project="$PROJECT" ||
  run gcloud storage buckets create "$SOURCE_BUCKET" --project="$PROJECT" --location="$REGION" \
    --uniform-bucket-level-access --public-access-prevention
exists missing gcloud artifacts repositories describe "$IMAGE_REPOSITORY" --location="$REGION" \
  --project="$PROJECT" ||
  run gcloud artifacts repositories create "$IMAGE_REPOSITORY" --location="$REGION" \
    --project="$PROJECT" --repository-format=docker \
    --description="Images of the Cloud Functions of this region"
grant gcloud storage buckets add-iam-policy-binding "$SOURCE_BUCKET" --project="$PROJECT" \
  --member="serviceAccount:$BUILD_SA" --role=roles/storage.objectViewer --condition=None
grant gcloud artifacts repositories add-iam-policy-binding "$IMAGE_REPOSITORY" \
  --location="$REGION" --project="$PROJECT" --member="serviceAccount:$BUILD_SA" \
  --role=roles/artifactregistry.writer --condition=None
grant gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$BUILD_SA" \
  --role=roles/logging.logWriter --condition=None

# ---- 9. Pub/Sub service agent: dead-lettering, and push tokens for the trigger -------------------
PUBSUB_AGENT=serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com
for topic in "$DLQ_TOPIC" "$LINQ_DLQ_TOPIC"; do
  grant gcloud pubsub topics add-iam-policy-binding "$topic" --project="$PROJECT" \
    --member="$PUBSUB_AGENT" --role=roles/pubsub.publisher
done
# Needed by projects whose Pub/Sub agent predates 2021-04-08; scoped to the trigger's account.
grant gcloud iam service-accounts add-iam-policy-binding "$TRIGGER_SA" --project="$PROJECT" \
  --member="$PUBSUB_AGENT" --role=roles/iam.serviceAccountTokenCreator \
  --condition=None

# ---- 10. Functions -------------------------------------------------------------------------------
# Each function's plain variables are in BUILD_DIR/<function>.env.yaml (tools/deploy_env.py),
# beside the sources, so not uploaded with them: YAML keeps every value whole, where
# --set-env-vars would split a template or a list of accounts at its commas.
# deploy_intake NAME ENTRY_POINT ACCOUNT MAX_INSTANCES ENV_FILE VARIABLE=SECRET:VERSION: one of the
# two public intakes, both of the ingest source (ingest_fn/main.py), its signing secret pinned.
deploy_intake() {
  deploy_function "$1" "$INGEST_DIR" \
    --runtime="$RUNTIME" --entry-point="$2" --trigger-http --allow-unauthenticated \
    --service-account="$3" --build-service-account="$BUILD_SA_PATH" --memory="$INGEST_MEMORY" \
    --concurrency="$INGEST_CONCURRENCY" --max-instances="$4" --timeout="${INGEST_TIMEOUT_S}s" \
    --env-vars-file="$BUILD_DIR/$5.env.yaml" --set-secrets="$6"
}
# deploy_ingest VERSION CONNECT_VERSION and deploy_linq_intake VERSION: each pinned to VERSION of
# its signing secret (the ingest to CONNECT_VERSION of the Connect endpoint's too, unless empty),
# deployed again in step 13 once the vendor's own is stored. The Linq intake has a public URL of
# its own, which step 13 subscribes to Linq's events.
deploy_ingest() {
  local secrets="STRIPE_WEBHOOK_SECRET=$WEBHOOK_SECRET:$1"
  [[ -z $2 ]] || secrets+=",STRIPE_CONNECT_WEBHOOK_SECRET=$CONNECT_HOOK_SECRET:$2"
  deploy_intake "$INGEST_FN" stripe_webhook "$INGEST_SA" "$INGEST_MAX_INSTANCES" ingest "$secrets"
}
deploy_linq_intake() {
  deploy_intake "$LINQ_INTAKE_FN" linq_webhook "$LINQ_INTAKE_SA" "$LINQ_INTAKE_MAX_INSTANCES" \
    linq-intake "LINQ_WEBHOOK_SECRET=$LINQ_HOOK_SECRET:$1"
}

note "ingest function"
deploy_ingest "$WEBHOOK_VERSION" "$CONNECT_HOOK_VERSION"

note "recover function"
# Ingress internal-only: only Eventarc's push from the project's own Pub/Sub reaches it, never
# a request from the internet.
deploy_function "$RECOVER_FN" "$RECOVER_DIR" \
  --runtime="$RUNTIME" --entry-point=recover_payment --trigger-topic="$TOPIC" --retry \
  --service-account="$RECOVER_SA" --trigger-service-account="$TRIGGER_SA" \
  --build-service-account="$BUILD_SA_PATH" --ingress-settings=internal-only \
  --memory="$RECOVER_MEMORY" --concurrency="$RECOVER_CONCURRENCY" \
  --max-instances="$RECOVER_MAX_INSTANCES" --timeout="${RECOVER_TIMEOUT_S}s" \
  --env-vars-file="$BUILD_DIR/recover.env.yaml" --set-secrets="$RECOVER_SECRETS"
# Eventarc calls the function as the trigger account: it needs run.invoker on this service only.
grant gcloud functions add-invoker-policy-binding "$RECOVER_FN" --region="$REGION" \
  --project="$PROJECT" --member="serviceAccount:$TRIGGER_SA"

note "release function and its schedule"
# The same source as recover (recover_fn/main.py), another entry point. No --retry: the next
# tick comes in five minutes, and whatever a failed sweep left is found by it.
deploy_function "$RELEASE_FN" "$RECOVER_DIR" \
  --runtime="$RUNTIME" --entry-point=release_deferred --trigger-topic="$SWEEP_TOPIC" \
  --service-account="$RELEASE_SA" --trigger-service-account="$TRIGGER_SA" \
  --build-service-account="$BUILD_SA_PATH" --ingress-settings=internal-only \
  --memory="$RELEASE_MEMORY" --max-instances="$RELEASE_MAX_INSTANCES" \
  --timeout="${RELEASE_TIMEOUT_S}s" --env-vars-file="$BUILD_DIR/release.env.yaml"
grant gcloud functions add-invoker-policy-binding "$RELEASE_FN" --region="$REGION" \
  --project="$PROJECT" --member="serviceAccount:$TRIGGER_SA"
exists missing gcloud scheduler jobs describe "$SWEEP_JOB" --location="$REGION" \
  --project="$PROJECT" ||
  run gcloud scheduler jobs create pubsub "$SWEEP_JOB" --location="$REGION" --project="$PROJECT" \
    --schedule="$RELEASE_SCHEDULE" --time-zone=Etc/UTC --topic="$SWEEP_TOPIC" --message-body='{}' \
    --description="dunning: release payments deferred for the recipient's quiet hours"

note "Linq intake and its subscriber"
deploy_linq_intake "$LINQ_HOOK_VERSION"
# The subscriber ships with the recover source (recover_fn/main.py, entry point linq_event).
linq_event_flags=(--env-vars-file="$BUILD_DIR/linq-events.env.yaml")
[[ -z $LINQ_EVENT_SECRETS ]] || linq_event_flags+=(--set-secrets="$LINQ_EVENT_SECRETS")
deploy_function "$LINQ_EVENT_FN" "$RECOVER_DIR" \
  --runtime="$RUNTIME" --entry-point=linq_event --trigger-topic="$LINQ_TOPIC" --retry \
  --service-account="$LINQ_EVENT_SA" --trigger-service-account="$TRIGGER_SA" \
  --build-service-account="$BUILD_SA_PATH" --ingress-settings=internal-only \
  --memory="$RECOVER_MEMORY" --max-instances="$LINQ_EVENT_MAX_INSTANCES" \
  --timeout="${LINQ_EVENT_TIMEOUT_S}s" "${linq_event_flags[@]}"
grant gcloud functions add-invoker-policy-binding "$LINQ_EVENT_FN" --region="$REGION" \
  --project="$PROJECT" --member="serviceAccount:$TRIGGER_SA"

# ---- 11. Dead-letter policy and backoff on the subscriptions Eventarc created --------------------
note "dead-lettering"
# dead_letter FUNCTION DLQ_TOPIC: the policy on the Pub/Sub subscription of FUNCTION's trigger.
dead_letter() {
  local fn=$1 dlq=$2 trigger subscription
  trigger=$(query '<trigger>' gcloud functions describe "$fn" --region="$REGION" \
    --project="$PROJECT" '--format=value(eventTrigger.trigger)')
  trigger=${trigger##*/}
  [[ -n $trigger ]] || die "$fn has no Eventarc trigger"
  subscription=$(query '<eventarc-subscription>' gcloud eventarc triggers describe "$trigger" \
    --location="$REGION" --project="$PROJECT" '--format=value(transport.pubsub.subscription)')
  subscription=${subscription##*/}
  [[ -n $subscription ]] || die "trigger $trigger has no Pub/Sub subscription"
  grant gcloud pubsub subscriptions add-iam-policy-binding "$subscription" --project="$PROJECT" \
    --member="$PUBSUB_AGENT" --role=roles/pubsub.subscriber
  # Re-applied on every run: a redeploy may recreate the subscription with Eventarc's defaults.
  run gcloud pubsub subscriptions update "$subscription" --project="$PROJECT" \
    --dead-letter-topic="$dlq" --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS" \
    --min-retry-delay="$MIN_RETRY_DELAY" --max-retry-delay="$MAX_RETRY_DELAY" \
    --ack-deadline="$ACK_DEADLINE_S"
}
dead_letter "$RECOVER_FN" "$DLQ_TOPIC"
dead_letter "$LINQ_EVENT_FN" "$LINQ_DLQ_TOPIC"

# ---- 12. Monitoring: log-based metrics from the result lines, and their dashboard ----------------
# The definitions are the files of monitoring/ (one metric per file, named after it). Each is
# created when missing and otherwise left as it is; an edited definition is applied with
# `gcloud logging metrics update NAME --config-from-file=...` (or `monitoring dashboards update`).
note "monitoring"
for config in "$ROOT"/monitoring/metrics/*.json; do
  metric=$(basename "$config" .json)
  exists missing gcloud logging metrics describe "$metric" --project="$PROJECT" ||
    run gcloud logging metrics create "$metric" --project="$PROJECT" --config-from-file="$config"
done
# Dashboards get a generated id: found by their display name.
dashboards=$(query '' gcloud monitoring dashboards list --project="$PROJECT" \
  --filter="displayName=\"$DASHBOARD_NAME\"" '--format=value(name)')
[[ -n $dashboards ]] ||
  run gcloud monitoring dashboards create --project="$PROJECT" \
    --config-from-file="$ROOT/monitoring/dashboard.json"

# ---- 13. Live: the Stripe endpoints and the Linq subscription, the intakes pinned to them --------
note "Stripe webhook endpoints and Linq webhook subscription"
url=$(query '<ingest-url>' gcloud functions describe "$INGEST_FN" --region="$REGION" \
  --project="$PROJECT" '--format=value(serviceConfig.uri)')
linq_url=$(query '<linq-intake-url>' gcloud functions describe "$LINQ_INTAKE_FN" \
  --region="$REGION" --project="$PROJECT" '--format=value(serviceConfig.uri)')
[[ -n $url && -n $linq_url ]] || die "could not read the URLs of $INGEST_FN and $LINQ_INTAKE_FN"
# Each is found by its URL (an endpoint by whether it is a Connect one too), or made and its
# signing secret stored as a new version of its secret; what is live comes back as these
# (tools/go_live.py's Live.assignments), with what a failure from here on leaves.
STRIPE_ENDPOINT="" STRIPE_CONNECT_ENDPOINT="" STRIPE_MODE="" STRIPE_EVENTS=""
STRIPE_CONNECT_EVENTS="" WEBHOOK_NEW_VERSION="" CONNECT_WEBHOOK_NEW_VERSION=""
LINQ_SUBSCRIPTION="" LINQ_HOOK_NEW_VERSION="" KEPT_NOTE=""
connect=(connect "$url" "$linq_url" --stripe-secret="$WEBHOOK_SECRET:$WEBHOOK_VERSION"
  --linq-secret="$LINQ_HOOK_SECRET:$LINQ_HOOK_VERSION")
[[ -z $CONNECT_HOOK_VERSION ]] ||
  connect+=(--connect-secret="$CONNECT_HOOK_SECRET:$CONNECT_HOOK_VERSION")
if ((PRINT_ONLY)); then
  go_live "${connect[@]}"
  STRIPE_ENDPOINT='<endpoint-id>' STRIPE_MODE='<mode>' STRIPE_EVENTS='<events>'
  LINQ_SUBSCRIPTION='<subscription-id>'
  WEBHOOK_NEW_VERSION='<new-version>' LINQ_HOOK_NEW_VERSION='<new-version>'
  if [[ -n $CONNECT_SERVED ]]; then
    STRIPE_CONNECT_ENDPOINT='<connect-endpoint-id>' STRIPE_CONNECT_EVENTS='<events>'
    CONNECT_WEBHOOK_NEW_VERSION='<new-version>'
  fi
else
  live=$(go_live "${connect[@]}") || exit $?
  eval "$live"
fi
# An endpoint made above keeps its stored secret whatever fails next (nothing is lost: the
# ingest answers 503 and Stripe retries); a failure says so, and what the next run does.
say_kept() {
  local status=$?
  ((status == 0)) || [[ -z $KEPT_NOTE ]] || printf 'deploy.sh: %s\n' "$KEPT_NOTE" >&2
}
trap say_kept EXIT
if [[ -n $WEBHOOK_NEW_VERSION$CONNECT_WEBHOOK_NEW_VERSION ]]; then
  note "ingest function, with the endpoints' signing secrets"
  [[ -z $WEBHOOK_NEW_VERSION ]] || WEBHOOK_VERSION=$WEBHOOK_NEW_VERSION
  [[ -z $CONNECT_WEBHOOK_NEW_VERSION ]] || CONNECT_HOOK_VERSION=$CONNECT_WEBHOOK_NEW_VERSION
  deploy_ingest "$WEBHOOK_VERSION" "$CONNECT_HOOK_VERSION"
fi
if [[ -n $LINQ_HOOK_NEW_VERSION ]]; then
  note "Linq intake, with the subscription's signing secret"
  deploy_linq_intake "$LINQ_HOOK_NEW_VERSION"
  LINQ_HOOK_VERSION=$LINQ_HOOK_NEW_VERSION
fi
trap - EXIT

# ---- 14. What is live, and where to watch it -----------------------------------------------------
services=""
for fn in "$INGEST_FN" "$RECOVER_FN" "$RELEASE_FN" "$LINQ_INTAKE_FN" "$LINQ_EVENT_FN"; do
  services+="${services:+ OR }\"$fn\""
done
results="resource.type=\"cloud_run_revision\" AND resource.labels.service_name=($services)"
results+=" AND jsonPayload.action:*"
connect_endpoint=""
if [[ -n $STRIPE_CONNECT_ENDPOINT ]]; then
  connect_endpoint="
  Stripe Connect endpoint $STRIPE_CONNECT_ENDPOINT -> $url (connected accounts' events)
    events: $STRIPE_CONNECT_EVENTS
    signing secret: $CONNECT_HOOK_SECRET version $CONNECT_HOOK_VERSION"
fi
cat <<EOF

Live in project $PROJECT ($REGION), Stripe in $STRIPE_MODE mode:
  Stripe endpoint $STRIPE_ENDPOINT -> $url
    events: $STRIPE_EVENTS
    signing secret: $WEBHOOK_SECRET version $WEBHOOK_VERSION$connect_endpoint
  Linq subscription $LINQ_SUBSCRIPTION -> $linq_url
    signing secret: $LINQ_HOOK_SECRET version $LINQ_HOOK_VERSION
  Functions: $INGEST_FN and $LINQ_INTAKE_FN (public), $RECOVER_FN,
    $RELEASE_FN (every 5 minutes), $LINQ_EVENT_FN
  Dead letters: gcloud pubsub subscriptions pull $DLQ_SUB --project=$PROJECT
                gcloud pubsub subscriptions pull $LINQ_DLQ_SUB --project=$PROJECT

Watch the result lines (one per outcome):
  gcloud logging read '$results' --project=$PROJECT --freshness=1h --order=asc --format='table(timestamp,resource.labels.service_name,jsonPayload.action,jsonPayload.invoice_id,jsonPayload.reason)'
EOF
