#!/usr/bin/env bash
# Benchmark suite: `make bench` (full, about 90 min on 2 cores) or `make bench-quick`.
#
#   bash benchmarks/run.sh [--quick] [extra bench.py options]
#
# 1. builds (idempotently) benchmarks/.venv-peers, the peers' own virtual environment
#    (rpy2 3.5.17, pymer4 0.8.2 with pandas<3, statsmodels, IPython) -- never the
#    project's .venv -- and benchmarks/.venv-rfree, the R-free peers' (mixedlm,
#    lme-python, interlace-lme); a failed install is recorded, not fatal;
# 2. writes the data once under benchmarks/data/ (R's data sets via Rscript, the
#    seeded 1M-row synthetic design via numpy);
# 3. runs benchmarks/bench.py, which times every tool in its own process and writes
#    benchmarks/RESULTS.md (quick: benchmarks/RESULTS-quick.md);
# 4. runs benchmarks/many.py (issue 11: lmer_many / glmer_many against R's loop and the
#    peers' loops), which writes its section "Many models (issue #11)" into that report
#    (skip it with --no-many);
# 5. runs benchmarks/power.py (issue 20: m.power against R's plain power loop), which
#    writes its section "Power by simulation (issue #20)" into that report (skip it with
#    --no-power);
# 6. (full mode) profiles lme4's fit on InstEval and measures Kenward-Roger's cost on parts
#    of it (issue 23): benchmarks/PROFILE.md.
# Benchmarks never fail because something is slow: this script exits non-zero only
# when it cannot run at all (no R, no project venv).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
cd "$ROOT"

QUICK=""
MANY=1
POWER=1
BENCH_ARGS=()
for a in "$@"; do
    case "$a" in
        --quick) QUICK=1; BENCH_ARGS+=("$a") ;;
        --no-many) MANY="" ;;
        --no-power) POWER="" ;;
        *) BENCH_ARGS+=("$a") ;;
    esac
done

PROJECT_PY="$ROOT/.venv/bin/python"
PEERS="$HERE/.venv-peers"
PEERS_PY="$PEERS/bin/python"
DATA="$HERE/data"
PYTHON="${PYTHON:-python3}"
mkdir -p "$DATA/logs"

if [ ! -x "$PROJECT_PY" ]; then
    echo "benchmarks: $PROJECT_PY not found; run 'make setup' first" >&2
    exit 1
fi
if ! command -v Rscript >/dev/null 2>&1; then
    echo "benchmarks: Rscript not found; run 'make setup' first" >&2
    exit 1
fi

# ---------------------------------------------------------------- 1. peers' venv
# Pins: rpy2 3.6.x does not load against R 4.2 (undefined symbol R_getVar); pymer4
# 0.9.x needs the R package `report`, which Debian does not package; pymer4 0.8.2
# breaks with pandas 3.
PEER_REQS=("rpy2==3.5.17" "pandas<3" "pymer4==0.8.2" "statsmodels" "ipython")
PEER_STAMP="$PEERS/.bench-installed"
PEER_STATUS="$DATA/peers-status.txt"
want="${PEER_REQS[*]}"
if [ ! -f "$PEER_STAMP" ] || [ "$(cat "$PEER_STAMP")" != "$want" ]; then
    echo "benchmarks: building peers' venv in benchmarks/.venv-peers ..."
    : > "$PEER_STATUS"
    log="$DATA/logs/peers-install.log"
    if [ ! -x "$PEERS_PY" ] && ! "$PYTHON" -m venv "$PEERS" >"$log" 2>&1; then
        echo "could not create benchmarks/.venv-peers with $PYTHON: $(tail -n 3 "$log" | tr '\n' ' ')" > "$PEER_STATUS"
    else
        "$PEERS_PY" -m pip install -q --upgrade pip >>"$log" 2>&1 || true
        # all at once, then each on its own, so one failing peer does not block the rest
        if "$PEERS_PY" -m pip install -q "${PEER_REQS[@]}" >>"$log" 2>&1; then
            echo "$want" > "$PEER_STAMP"
        else
            for r in "${PEER_REQS[@]}"; do
                "$PEERS_PY" -m pip install -q "$r" >>"$log" 2>&1 \
                    || echo "pip install '$r' failed (see benchmarks/data/logs/peers-install.log)" >> "$PEER_STATUS"
            done
        fi
    fi
    [ -s "$PEER_STATUS" ] && cat "$PEER_STATUS" >&2
fi

# ---------------------------------------------------------------- 1b. R-free peers' venv
# Python packages that fit lme4's models without R (issue 23): their own venv, so that
# their numpy/pandas/polars pins never meet pymer4's. pyarrow: lme-python converts a
# pandas frame with categorical columns through Polars, which needs it.
RFREE_REQS=("mixedlm==1.3.0" "lme-python==0.2.7" "interlace-lme==0.3.2" "pandas" "pyarrow")
RFREE="$HERE/.venv-rfree"
RFREE_STAMP="$RFREE/.bench-installed"
RFREE_STATUS="$DATA/rfree-status.txt"
want="${RFREE_REQS[*]}"
if [ ! -f "$RFREE_STAMP" ] || [ "$(cat "$RFREE_STAMP")" != "$want" ]; then
    echo "benchmarks: building the R-free peers' venv in benchmarks/.venv-rfree ..."
    : > "$RFREE_STATUS"
    log="$DATA/logs/rfree-install.log"
    if [ ! -x "$RFREE/bin/python" ] && ! "$PYTHON" -m venv "$RFREE" >"$log" 2>&1; then
        echo "could not create benchmarks/.venv-rfree with $PYTHON" > "$RFREE_STATUS"
    elif "$RFREE/bin/python" -m pip install -q "${RFREE_REQS[@]}" >>"$log" 2>&1; then
        echo "$want" > "$RFREE_STAMP"
    else
        for r in "${RFREE_REQS[@]}"; do
            "$RFREE/bin/python" -m pip install -q "$r" >>"$log" 2>&1 \
                || echo "pip install '$r' failed (see benchmarks/data/logs/rfree-install.log)" >> "$RFREE_STATUS"
        done
    fi
    [ -s "$RFREE_STATUS" ] && cat "$RFREE_STATUS" >&2
fi

# ---------------------------------------------------------------- 2. data
Rscript "$HERE/export_data.R" "$DATA" || echo "benchmarks: exporting R data sets failed" >&2
if [ ! -f "$DATA/synthetic_100k.csv" ]; then
    "$PROJECT_PY" "$HERE/make_synthetic.py" "$DATA/synthetic_100k.csv" --rows 100000 \
        || echo "benchmarks: writing the 100k synthetic data failed" >&2
fi
if [ -z "$QUICK" ] && [ ! -f "$DATA/synthetic_1M.csv" ]; then
    "$PROJECT_PY" "$HERE/make_synthetic.py" "$DATA/synthetic_1M.csv" \
        || echo "benchmarks: writing the synthetic data failed" >&2
fi

# ---------------------------------------------------------------- 3. run
"$PROJECT_PY" "$HERE/bench.py" "${BENCH_ARGS[@]}"

# ---------------------------------------------------------------- 3b. many models
# after bench.py, which rewrites the whole report: many.py splices its section in
if [ -n "$MANY" ]; then
    "$PROJECT_PY" "$HERE/many.py" ${QUICK:+--quick} \
        || echo "benchmarks: the many-models run failed" >&2
fi

# ---------------------------------------------------------------- 3c. power
# after many.py, in the same way: power.py splices its section in
if [ -n "$POWER" ]; then
    "$PROJECT_PY" "$HERE/power.py" ${QUICK:+--quick} \
        || echo "benchmarks: the power run failed" >&2
fi

# ---------------------------------------------------------------- 3d. where lme4's time goes
# issue 23: lme4's phases and deviance evaluations on InstEval, and what Kenward-Roger
# costs on growing parts of it (benchmarks/PROFILE.md)
if [ -z "$QUICK" ]; then
    {
        echo "# Where the time of a large fit goes"
        echo
        echo "Written by \`benchmarks/run.sh\` (\`make bench\`) on $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)."
        echo
        echo "## lme4 on InstEval: \`benchmarks/profile_fit.R\`"
        echo
        Rscript "$HERE/profile_fit.R" "$DATA/InstEval.csv" "y ~ service + (1|s) + (1|d) + (1|dept)" \
            "s,d,studage,lectage,service,dept" 2>/dev/null || echo "(the profile failed)"
        echo
        echo "## Kenward-Roger on parts of InstEval: \`benchmarks/kenward_roger.R\`"
        echo
        Rscript "$HERE/kenward_roger.R" "$DATA/InstEval.csv" 2>/dev/null || echo "(the measurement failed)"
    } > "$HERE/PROFILE.md.tmp" && mv "$HERE/PROFILE.md.tmp" "$HERE/PROFILE.md"
fi

# ---------------------------------------------------------------- 4. live status
# what the live status line costs a short fit (benchmarks/STATUS.md)
"$PROJECT_PY" "$HERE/status_overhead.py" --reps "$([ -n "$QUICK" ] && echo 40 || echo 200)" \
    >/dev/null || echo "benchmarks: the live-status overhead run failed" >&2
