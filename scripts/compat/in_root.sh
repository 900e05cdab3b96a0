#!/bin/bash
# Runs INSIDE a compat root (chroot), started by matrix.sh:
#   in_root.sh SUITE LINE VENV CONSTRAINTS OUTPREFIX [SRC [SLOTS]]
# (re)uses VENV, installs SRC[test] (default /src/lmermagic) with the rpy2 pins of
# CONSTRAINTS, runs the test suite, and writes OUTPREFIX.{install.log,log,json,row}. Exit 0
# only when all passed. LMM_COMPAT_INSTALL_ONLY=1: install only, exit with pip's status.
# With SLOTS (a directory shared by the stacks that run at the same time), the tests wait
# for one of LMM_COMPAT_JOBS lock files there: installs overlap, test runs (CPU) take turns.
set -uo pipefail
suite=$1 line=$2 venv=$3 cons=$4 out=$5 src=${6:-/src/lmermagic} slots=${7:-}
here=$(dirname "$0")
# the stacks of a root run at the same time: temporary files (pytest's, R's) apart
export TMPDIR=/tmp/lmm-compat-rpy2-$line
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"

take_slot() {   # hold one of the slot lock files on fd 8 (released when fd 8 closes)
    local i
    while :; do
        for ((i = 0; i < ${LMM_COMPAT_JOBS:-1}; i++)); do
            exec 8>"$slots/slot-$i"
            flock -n 8 && return 0
            exec 8>&-
        done
        sleep 2
    done
}

install_rc=0 test_rc=-1
t0=$SECONDS
{
    echo "== $suite rpy2-$line: $(. /etc/os-release && echo "$PRETTY_NAME"), $(python3 --version)"
    if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        echo "== creating $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" || install_rc=$?
    else
        echo "== reusing $venv"
    fi
    if ((install_rc == 0)); then
        echo "== pip install -e '${src}[test]' -c $cons"
        cat "$cons"
        "$venv/bin/python" -m pip install -e "${src}[test]" -c "$cons" || install_rc=$?
        "$venv/bin/python" -m pip list 2>/dev/null | grep -i -E '^(rpy2|cffi|numpy|pandas|pytest|ipython) '
    fi
    echo "== install exit status $install_rc after $((SECONDS - t0)) s"
} >"$out.install.log" 2>&1
install_s=$((SECONDS - t0))
if [[ ${LMM_COMPAT_INSTALL_ONLY:-0} == 1 ]]; then   # matrix.sh --prepare: no tests, no record
    exit "$install_rc"
fi

t1=$SECONDS
if ((install_rc == 0)); then
    if [[ -n $slots ]]; then
        take_slot
        echo "== waited $((SECONDS - t1)) s for a test slot (LMM_COMPAT_JOBS=${LMM_COMPAT_JOBS:-1})" \
            >>"$out.install.log"
        t1=$SECONDS
    fi
    # Left to the host's suite: the InstEval comparison with lmerTest (1-3 min a stack; the
    # stacks check the same Satterthwaite engine against lmerTest on the smaller models), and
    # the tests marked host_only (lint, JupyterLab in Chromium), the same on every stack.
    # shellcheck disable=SC2086
    (cd "$src" && PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" LMERMAGIC_SKIP_SLOW=1 \
        "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not host_only" \
        ${LMM_COMPAT_PYTEST_ARGS:-}) \
        >"$out.log" 2>&1 </dev/null 8>&-
    test_rc=$?
    exec 8>&-
else
    {
        echo "ERROR: installing lmermagic with rpy2 $line into $venv failed (download or build):"
        tail -n 40 "$out.install.log"
    } >"$out.log"
fi
test_s=$((SECONDS - t1))

py=$venv/bin/python
"$py" -c 'import sys' 2>/dev/null || py=python3
"$py" "$here/record.py" --suite "$suite" --line "$line" --venv "$venv" \
    --install-rc "$install_rc" --test-rc "$test_rc" --install-seconds "$install_s" \
    --test-seconds "$test_s" --out "$out" ||
    echo "ERROR: record.py failed" >&2
((install_rc == 0 && test_rc == 0))
