#!/usr/bin/env bash
# Compatibility matrix: lmermagic's test suite in Debian roots (debootstrap minbase) with
# each rpy2 line the root's R allows.
#
#   scripts/compat/matrix.sh                 # all stacks: trixie:3.5 trixie:3.6 sid:3.5 sid:3.6
#   scripts/compat/matrix.sh trixie:3.6      # one stack (SUITE:RPY2LINE); several may be given
#   scripts/compat/matrix.sh --rebuild sid:3.5   # rebuild the roots used, then run
#   scripts/compat/matrix.sh --build-only    # build/verify the roots, run no tests
#   scripts/compat/matrix.sh --prepare       # build the roots and install the stacks' venvs:
#                                            # a later run only tests (.ci/run's head start)
#   scripts/compat/matrix.sh --list          # the known stacks
#
# Runs as root, unattended (CI=true, no stdin). Roots are built once and reused while their
# stamp matches this recipe; missing roots are built side by side. Every run copies the
# working tree (tracked + untracked, not ignored) fresh into /src/lmermagic-rpy2-LINE of the
# root (one copy per stack: the stacks of a root run at the same time), installs it into the
# stack's venv (/opt/venv-rpy2-LINE, kept in the root) and runs pytest. All stacks install
# at once (network, compilers); their test runs take turns in LMM_COMPAT_JOBS slots (CPU).
# pip's cache ($ROOTS/.pip-cache) is shared by all roots and outlives their rebuilds.
#
# Environment:
#   LMM_COMPAT_ROOTS      where the roots live (default /var/cache/lmermagic-compat)
#   LMM_COMPAT_OUT        logs and records (default <repo>/build/compat)
#   LMM_COMPAT_MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   LMM_COMPAT_TIMEOUT    seconds for one stack's install + tests (default 3600)
#   LMM_COMPAT_JOBS       test runs at a time (default: the number of CPUs, at most 4)
#   LMM_COMPAT_PYTEST_ARGS  extra pytest arguments (default none: the full suite)
#   CI, OPENBLAS_*, PIP_DEFAULT_TIMEOUT are passed into the root.
#
# Outputs in $LMM_COMPAT_OUT: <suite>-rpy2-<line>.log (pytest), .install.log (pip),
# .json (versions + result), root-<suite>.log (root build), matrix.md (the table).
# Exit status: 0 when every stack's tests passed, 1 otherwise (test failures, or an
# ERROR: a root build, download or install that failed), 2 on bad usage.
set -Eeuo pipefail

RECIPE=6   # bump when the way roots are built changes: roots with another stamp are rebuilt
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ROOTS=${LMM_COMPAT_ROOTS:-/var/cache/lmermagic-compat}
OUT=${LMM_COMPAT_OUT:-$REPO/build/compat}
MIRROR=${LMM_COMPAT_MIRROR:-http://deb.debian.org/debian}
STACK_TIMEOUT=${LMM_COMPAT_TIMEOUT:-3600}
JOBS=${LMM_COMPAT_JOBS:-$(n=$(nproc 2>/dev/null || echo 2); echo $((n < 4 ? n : 4)))}
CA=/etc/ssl/certs/ca-certificates.crt

ALL_STACKS=(trixie:3.5 trixie:3.6 sid:3.5 sid:3.6)
# rpy2 lines each suite's R admits (3.6.6+ needs R >= 4.5; 3.5.17 builds on R 4.5/4.6)
declare -A SUITE_LINES=([trixie]="3.5 3.6" [sid]="3.5 3.6")

# Debian packages of every root (no recommends): R and the R packages lmermagic uses, plus
# what building rpy2 from source (cffi API mode, linked against libR) needs: gcc, libc and
# Python headers, make (`R CMD config` runs it), and the -dev packages behind the libraries
# that `R CMD config --ldflags` names (R 4.5/4.6: -lR -lpcre2-8 -ldeflate -lzstd -llzma -lbz2
# -lz -ltirpc -licuuc -licui18n; rpy2 adds -lblas). The browser test (JupyterLab in
# headless Chromium) needs chromium and chromium-driver. A root without one of these is
# an ERROR.
PACKAGES="r-base-core r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-geepack r-cran-emmeans
r-cran-broom.mixed r-cran-numderiv r-cran-car r-cran-glmmtmb r-cran-ordinal python3 python3-venv python3-dev gcc libc6-dev make
libffi-dev pkg-config libpcre2-dev libdeflate-dev libzstd-dev liblzma-dev libbz2-dev zlib1g-dev
libtirpc-dev libicu-dev libblas-dev chromium chromium-driver"
# Per suite, the optional R packages (model checks, R2/ICC, simulated residuals, AICc) as far
# as the suite ships them (checked 2026-12: trixie has no performance, effectsize, MuMIn).
# One the suite lacks, or cannot install, is left out with a WARNING; the tests skip.
declare -A EXTRAS=([trixie]="r-cran-dharma"
    [sid]="r-cran-performance r-cran-effectsize r-cran-dharma r-cran-mumin")
oneline() { tr -s ' \n' '  ' <<<"$*" | sed 's/^ //; s/ $//'; }   # one line, single spaces
PACKAGES=$(oneline "$PACKAGES")

pins_for() {
    case $1 in
        3.5) printf '%s\n' 'rpy2==3.5.17' ;;
        3.6) printf '%s\n' 'rpy2==3.6.9' 'rpy2-rinterface==3.6.7' 'rpy2-robjects==3.6.6' ;;
        *) return 1 ;;
    esac
}

log() { printf '[compat %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,33p' "$HERE/matrix.sh" | sed 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------- arguments
ORIG_ARGS=("$@")
REBUILD=0 BUILD_ONLY=0 PREPARE=0 STACKS=()
while (($#)); do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --list) printf '%s\n' "${ALL_STACKS[@]}"; exit 0 ;;
        --rebuild) REBUILD=1 ;;
        --build-only) BUILD_ONLY=1 ;;
        --prepare) PREPARE=1 ;;
        -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
        *) STACKS+=("$1") ;;
    esac
    shift
done
((${#STACKS[@]})) || STACKS=("${ALL_STACKS[@]}")
SUITES=()
for s in "${STACKS[@]}"; do
    suite=${s%%:*} line=${s#*:}
    if [[ $s != *:* || -z ${SUITE_LINES[$suite]+x} || " ${SUITE_LINES[$suite]} " != *" $line "* ]]; then
        echo "unknown stack '$s' (known: ${ALL_STACKS[*]})" >&2; exit 2
    fi
    [[ " ${SUITES[*]-} " == *" $suite "* ]] || SUITES+=("$suite")
done

[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot, mount)"

# Private mount namespace: whatever happens to this script (even SIGKILL), the kernel drops
# its mounts with the namespace. The EXIT trap below unmounts them anyway.
if [[ -z ${LMM_COMPAT_NS:-} ]]; then
    if unshare --mount --propagation private true 2>/dev/null; then
        LMM_COMPAT_NS=1 exec unshare --mount --propagation private -- \
            bash "$HERE/matrix.sh" ${ORIG_ARGS[@]+"${ORIG_ARGS[@]}"} </dev/null
    fi
    log "WARNING: unshare --mount is not available; mounting in the host's namespace"
fi

# ---------------------------------------------------------------- mounts
MOUNTS=()
mnt() {   # mnt TARGET MOUNT-ARGS... : mount and remember, for umount_all
    local target=$1; shift
    mount "$@" "$target" || die "mount $* $target failed"
    MOUNTS+=("$target")
}
umount_all() {
    local i t
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        t=${MOUNTS[i]}
        umount "$t" 2>/dev/null || umount -l "$t" 2>/dev/null ||
            echo "WARNING: could not unmount $t" >&2
    done
    MOUNTS=()
}
mounts_under() {   # prints mount points at or below DIR (this namespace)
    local dir; dir=$(readlink -m "$1")
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}
safe_rm() {   # rm -rf DIR, refusing when anything is mounted below it
    local dir=$1 m
    [[ -e $dir ]] || return 0
    m=$(mounts_under "$dir")
    [[ -z $m ]] || die "refusing to delete $dir: still mounted: $m"
    rm -rf --one-file-system "$dir"
}
cleanup() {
    local rc=$?
    [[ $BASHPID != "$$" ]] || stop_background
    umount_all
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
guarded() {   # run "$@" in a subshell with errexit and its own traps; status in GUARD_RC
    set +e
    (set -e; trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM HUP; "$@")
    GUARD_RC=$?
    set -e
}

enter_root() {   # resolv.conf + CA bundle, then /proc /sys /dev /dev/pts /dev/shm
    local r=$1
    cp -L --remove-destination /etc/resolv.conf "$r/etc/resolv.conf"
    mkdir -p "$r/etc/ssl/certs"
    [[ -f $CA ]] || die "host CA bundle $CA is missing"
    cp -L --remove-destination "$CA" "$r$CA"
    mnt "$r/proc" -t proc proc
    mnt "$r/sys" --bind /sys
    mnt "$r/dev" --bind /dev
    mkdir -p "$r/dev/pts" "$r/dev/shm" 2>/dev/null || true
    mnt "$r/dev/pts" --bind /dev/pts
    mnt "$r/dev/shm" -t tmpfs -o mode=1777,size=2g tmpfs
}

ROOT_ENV=()
root_env() {   # the clean environment of commands in a root, into ROOT_ENV
    ROOT_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive
        "PIP_CERT=$CA" "SSL_CERT_FILE=$CA" "REQUESTS_CA_BUNDLE=$CA" PIP_CONFIG_FILE=/dev/null
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
        "PIP_DEFAULT_TIMEOUT=${PIP_DEFAULT_TIMEOUT:-120}"
        "LMM_COMPAT_PYTEST_ARGS=${LMM_COMPAT_PYTEST_ARGS:-}" "LMM_COMPAT_JOBS=$JOBS")
    local v
    for v in $(compgen -e | grep -E '^(CI|OPENBLAS_.*)$' || true); do ROOT_ENV+=("$v=${!v}"); done
}
in_root() {   # in_root ROOT CMD... : chroot with a clean environment
    local r=$1; shift
    root_env
    env -i "${ROOT_ENV[@]}" chroot "$r" "$@" 9>&-   # fd 9: the lock, not for the root
}

apt_opts() {   # sid's Release files outlive their Valid-Until on some mirrors
    if [[ $1 == sid ]]; then echo "-o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false"; fi
}

# ---------------------------------------------------------------- roots
stamp_text() {
    printf 'recipe=%s\nsuite=%s\nmirror=%s\npackages=%s\nextras=%s\n' "$RECIPE" "$1" "$MIRROR" \
        "$PACKAGES" "$(oneline "${EXTRAS[$1]-}")"
}
STAMP=.lmermagic-compat-stamp

root_ok() {
    local r=$ROOTS/$1
    [[ -f $r/$STAMP && -x $r/usr/bin/Rscript && -x $r/usr/bin/python3 ]] &&
        [[ "$(cat "$r/$STAMP")" == "$(stamp_text "$1")" ]]
}

ensure_debootstrap() {
    command -v debootstrap >/dev/null && return 0
    log "installing debootstrap on the host"
    if [[ -z $(apt-cache policy debootstrap 2>/dev/null | awk '/Candidate:/ && $2 != "(none)"') ]]; then
        apt-get update -qq || die "apt-get update on the host failed"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap \
        >/dev/null || die "apt-get install debootstrap on the host failed"
}

build_root() {   # build into SUITE.tmp; stamp, then rename into place
    local suite=$1 final=$ROOTS/$1 tmp=$ROOTS/$1.tmp blog=$OUT/root-$1.log t0=$SECONDS
    ensure_debootstrap
    local -a script=()
    if [[ ! -f /usr/share/debootstrap/scripts/$suite ]]; then
        # an older debootstrap that does not know the suite: Debian's suites since bookworm
        # bootstrap alike, so sid's script does
        log "WARNING: debootstrap $(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null) has no script for '$suite'; using sid's"
        script=(/usr/share/debootstrap/scripts/sid)
    fi
    log "building root $suite in $tmp (log: $blog)"
    safe_rm "$tmp"
    : >"$blog"
    if ! debootstrap --variant=minbase --components=main "$suite" "$tmp" "$MIRROR" ${script[@]+"${script[@]}"} \
        >>"$blog" 2>&1; then
        tail -n 15 "$blog" >&2
        [[ -f $tmp/debootstrap/debootstrap.log ]] && tail -n 15 "$tmp/debootstrap/debootstrap.log" >&2
        die "debootstrap of '$suite' from $MIRROR failed (download or unpack): see $blog"
    fi
    # apt/dpkg settings of the root: no recommends, no docs/man/locales, no daemons
    echo "deb $MIRROR $suite main" >"$tmp/etc/apt/sources.list"
    {
        echo 'APT::Install-Recommends "false";'
        echo 'APT::Install-Suggests "false";'
        echo 'Acquire::Retries "3";'
        if [[ $suite == sid ]]; then
            echo 'Acquire::Check-Valid-Until "false";'
            echo 'Acquire::Check-Date "false";'
        fi
    } >"$tmp/etc/apt/apt.conf.d/90lmermagic-compat"
    # no fsync per file: a root is thrown away when its build fails (its stamp comes last)
    printf '%s\n' 'force-unsafe-io' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' \
        'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
        'path-include=/usr/share/locale/locale.alias' >"$tmp/etc/dpkg/dpkg.cfg.d/90lmermagic-compat"
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod +x "$tmp/usr/sbin/policy-rc.d"
    echo "debootstrap done after $((SECONDS - t0)) s" >>"$blog"

    enter_root "$tmp"
    # shellcheck disable=SC2046
    if ! in_root "$tmp" apt-get $(apt_opts "$suite") -q update >>"$blog" 2>&1; then
        tail -n 15 "$blog" >&2; die "apt-get update in the $suite root failed (download): see $blog"
    fi
    # shellcheck disable=SC2086,SC2046
    if ! in_root "$tmp" apt-get $(apt_opts "$suite") -q -y --no-install-recommends install $PACKAGES \
        >>"$blog" 2>&1; then
        tail -n 25 "$blog" >&2; die "apt-get install in the $suite root failed (download or dependency): see $blog"
    fi
    # the extras: all at once, else one by one; one that will not install is left out
    local extras=${EXTRAS[$suite]-} p
    # shellcheck disable=SC2086,SC2046
    if [[ -n $extras ]] && ! in_root "$tmp" apt-get $(apt_opts "$suite") -q -y \
        --no-install-recommends install $extras >>"$blog" 2>&1; then
        for p in $extras; do
            # shellcheck disable=SC2046
            in_root "$tmp" apt-get $(apt_opts "$suite") -q -y --no-install-recommends install "$p" \
                >>"$blog" 2>&1 || log "WARNING: $suite root without $p (not in $suite, or not installable): see $blog"
        done
    fi
    echo "packages installed after $((SECONDS - t0)) s" >>"$blog"
    in_root "$tmp" apt-get clean >>"$blog" 2>&1 || true
    umount_all
    stamp_text "$suite" >"$tmp/$STAMP"     # the stamp is written last ...
    if [[ -e $final ]]; then safe_rm "$final.old"; mv "$final" "$final.old"; fi
    mv "$tmp" "$final"                     # ... and only a renamed root is used
    safe_rm "$final.old"
    log "root $suite built in $((SECONDS - t0)) s ($(du -sh --one-file-system "$final" | cut -f1))"
    echo "root $suite built in $((SECONDS - t0)) s" >>"$blog"
}

# A root whose stamp differs from this recipe only by packages added to PACKAGES or to its
# EXTRAS gets them installed in place (a minute, against a rebuild's many); any other
# difference (recipe, suite, mirror, a package taken away) rebuilds it.
stamp_field() { sed -n "s/^$2=//p" <<<"$1"; }
root_can_grow() {
    local r=$ROOTS/$1 old new f p
    [[ -f $r/$STAMP && -x $r/usr/bin/Rscript && -x $r/usr/bin/python3 ]] || return 1
    old=$(cat "$r/$STAMP"); new=$(stamp_text "$1")
    for f in recipe suite mirror; do
        [[ "$(stamp_field "$old" $f)" == "$(stamp_field "$new" $f)" ]] || return 1
    done
    for p in $(stamp_field "$old" packages) $(stamp_field "$old" extras); do
        [[ " $(stamp_field "$new" packages) $(stamp_field "$new" extras) " == *" $p "* ]] || return 1
    done
}

grow_root() {   # install what the recipe added; the new stamp only once it is all in
    local suite=$1 r=$ROOTS/$1 blog=$OUT/root-$1.log t0=$SECONDS p
    log "adding the recipe's new packages to root $suite (log: $blog)"
    : >"$blog"
    enter_root "$r"
    # shellcheck disable=SC2046
    in_root "$r" apt-get $(apt_opts "$suite") -q update >>"$blog" 2>&1 ||
        { tail -n 15 "$blog" >&2; die "apt-get update in the $suite root failed: see $blog"; }
    # shellcheck disable=SC2086,SC2046
    in_root "$r" apt-get $(apt_opts "$suite") -q -y --no-install-recommends install $PACKAGES \
        >>"$blog" 2>&1 || { tail -n 25 "$blog" >&2; die "apt-get install in the $suite root failed: see $blog"; }
    for p in ${EXTRAS[$suite]-}; do
        # shellcheck disable=SC2046
        in_root "$r" apt-get $(apt_opts "$suite") -q -y --no-install-recommends install "$p" \
            >>"$blog" 2>&1 || log "WARNING: $suite root without $p (not in $suite, or not installable): see $blog"
    done
    in_root "$r" apt-get clean >>"$blog" 2>&1 || true
    umount_all
    stamp_text "$suite" >"$r/$STAMP"
    log "root $suite grown in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- stacks
copy_tree() {   # the working tree as it is: tracked + untracked-not-ignored files
    local dest=$1
    safe_rm "$dest"
    mkdir -p "$dest"
    if git -C "$REPO" -c safe.directory="$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$REPO" -c safe.directory="$REPO" ls-files -co --exclude-standard -z |
            tar -C "$REPO" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$dest"
    else
        tar -C "$REPO" --exclude=./build --exclude=./.venv --exclude=.git -cf - . | tar -xf - -C "$dest"
    fi
    [[ -f $dest/pyproject.toml ]] || die "copying $REPO into $dest failed"
}

run_stack() {   # run_stack SUITE LINE (root entered, tree copied) -> 0 when all passed
    local suite=$1 line=$2 r=$ROOTS/$1 name=$1-rpy2-$2 rc=0 t0=$SECONDS tail
    local helper=/opt/lmm-compat
    if ((PREPARE)); then
        log "stack $suite:$line: install (log: $OUT/$name.install.log)"
    else
        log "stack $suite:$line: install + pytest (logs: $OUT/$name.install.log, $OUT/$name.log)"
    fi
    rm -f "$OUT/$name".{log,install.log,json,row}
    pins_for "$line" >"$r$helper/constraints-rpy2-$line.txt"
    root_env
    timeout --kill-after=60 "$STACK_TIMEOUT" env -i "${ROOT_ENV[@]}" "LMM_COMPAT_INSTALL_ONLY=$PREPARE" \
        chroot "$r" bash "$helper/in_root.sh" "$suite" "$line" "/opt/venv-rpy2-$line" \
        "$helper/constraints-rpy2-$line.txt" "$helper/out/$name" "/src/lmermagic-rpy2-$line" \
        "$helper/slots" 9>&- || rc=$?
    if ((PREPARE)); then
        if ((rc)); then
            log "WARNING: stack $suite:$line: install failed (exit $rc; the test run tries again): see $OUT/$name.install.log"
        else
            log "stack $suite:$line: installed in $((SECONDS - t0)) s"
        fi
        return "$rc"
    fi
    if ((rc == 124 || rc == 137)); then
        echo "ERROR: stack $suite:$line timed out after $STACK_TIMEOUT s" | tee -a "$OUT/$name.log" >&2
    fi
    if [[ ! -f $OUT/$name.row ]]; then
        printf '| %s | ? | ? | ? | %s | ? | ERROR: stack did not complete (exit %s) |\n' \
            "$suite" "$line" "$rc" >"$OUT/$name.row"
    fi
    if [[ -f $OUT/$name.log ]]; then   # one write, so that stacks ending together do not mix
        if grep -q '^=* short test summary info =*$' "$OUT/$name.log"; then
            tail=$(sed -n '/^=* short test summary info =*$/,$p' "$OUT/$name.log" | tail -n 25)
        else
            tail=$(tail -n 12 "$OUT/$name.log")
        fi
        printf -- '---- %s:%s (%s s): tail of %s\n%s\n----\n' "$suite" "$line" \
            "$((SECONDS - t0))" "$OUT/$name.log" "$tail" >&2
    fi
    return "$rc"
}

run_suite() {   # run_suite SUITE LINE... : tree copies, mounts, the stacks side by side, unmount
    local suite=$1 r=$ROOTS/$1 line rc=0 pids=() p; shift
    for line; do copy_tree "$r/src/lmermagic-rpy2-$line"; done
    mkdir -p "$r/opt/lmm-compat/out" "$r/opt/lmm-compat/slots" "$r/root/.cache/pip"
    cp "$HERE/in_root.sh" "$HERE/record.py" "$r/opt/lmm-compat/"
    enter_root "$r"
    mnt "$r/opt/lmm-compat/out" --bind "$OUT"
    mnt "$r/opt/lmm-compat/slots" --bind "$ROOTS/.slots"
    mnt "$r/root/.cache/pip" --bind "$ROOTS/.pip-cache"
    for line; do run_stack "$suite" "$line" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    umount_all
    return "$rc"
}

background() {   # background FUNC ARGS... : FUNC in a subshell of its own (traps, unmounts)
    (set -e; trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM HUP; "$@") &
}
descendants() {   # the processes below PID, deepest last
    local c
    command -v ps >/dev/null || return 0
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}
stop_background() {   # on a signal or an error of this script: end what it started
    local p all=()
    # the jobs still running (not pids saved earlier: one that ended may be reused)
    for p in $(jobs -rp); do
        # shellcheck disable=SC2207
        all+=("$p" $(descendants "$p"))
    done
    ((${#all[@]})) || return 0
    kill -TERM "${all[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}

# ---------------------------------------------------------------- main
mkdir -p "$ROOTS" "$OUT"
exec 9>"$ROOTS/.lock"
if ! flock -n 9; then
    log "another matrix run holds $ROOTS/.lock; waiting"
    flock -w 7200 9 || die "could not lock $ROOTS/.lock"
fi

T_START=$SECONDS
FAILED=0
for stack in "${STACKS[@]}"; do   # no stale record stands in for this run's
    rm -f "$OUT/${stack%%:*}-rpy2-${stack#*:}".{row,json}
done
declare -A ROOT_ERR=() PID=()
BUILD=()
GROW=()
for suite in "${SUITES[@]}"; do
    if ((!REBUILD)) && ! root_ok "$suite" && root_can_grow "$suite"; then
        GROW+=("$suite")
    elif ((REBUILD)) || ! root_ok "$suite"; then
        BUILD+=("$suite")
    else
        log "reusing root $ROOTS/$suite (stamp matches recipe $RECIPE)"
    fi
done
if ((${#BUILD[@]})); then
    guarded ensure_debootstrap
    if ((GUARD_RC)); then
        for suite in "${BUILD[@]}"; do ROOT_ERR[$suite]=1; done; FAILED=1; BUILD=()
    fi
fi
# the roots side by side (downloads are seconds; dpkg's unpacking is the time), each in a
# subshell with its own EXIT trap so that one suite's failure lets the other run
for suite in ${BUILD[@]+"${BUILD[@]}"}; do background build_root "$suite"; PID[$suite]=$!; done
for suite in ${GROW[@]+"${GROW[@]}"}; do background grow_root "$suite"; PID[$suite]=$!; done
BUILD+=(${GROW[@]+"${GROW[@]}"})
for suite in ${BUILD[@]+"${BUILD[@]}"}; do
    wait "${PID[$suite]}" || { ROOT_ERR[$suite]=1; FAILED=1; }
done
((BUILD_ONLY)) && exit "$FAILED"

mkdir -p "$ROOTS/.slots" "$ROOTS/.pip-cache"
if ((PREPARE)); then
    log "installing ${#STACKS[@]} stack(s) at once"
else
    log "running ${#STACKS[@]} stack(s): installs at once, $JOBS test run(s) at a time (LMM_COMPAT_JOBS)"
fi
RUN=()
for suite in "${SUITES[@]}"; do
    lines=()
    for stack in "${STACKS[@]}"; do [[ ${stack%%:*} == "$suite" ]] && lines+=("${stack#*:}"); done
    if [[ -n ${ROOT_ERR[$suite]:-} ]]; then
        for line in "${lines[@]}"; do
            ((PREPARE)) && break
            printf '| %s | ? | ? | ? | %s | ? | ERROR: root build failed (see root-%s.log) |\n' \
                "$suite" "$line" "$suite" >"$OUT/$suite-rpy2-$line.row"
        done
        continue
    fi
    background run_suite "$suite" "${lines[@]}"
    PID[$suite]=$!
    RUN+=("$suite")
done
for suite in ${RUN[@]+"${RUN[@]}"}; do
    rc=0
    wait "${PID[$suite]}" || rc=$?
    ((rc == 0)) || FAILED=1
    for stack in "${STACKS[@]}"; do
        [[ ${stack%%:*} == "$suite" ]] && ((!PREPARE)) || continue
        [[ -f $OUT/$suite-rpy2-${stack#*:}.row ]] ||
            printf '| %s | ? | ? | ? | %s | ? | ERROR: stack did not run (exit %s) |\n' \
                "$suite" "${stack#*:}" "$rc" >"$OUT/$suite-rpy2-${stack#*:}.row"
    done
done
((PREPARE)) && exit "$FAILED"

{
    echo "| OS | R | lme4 | lmerTest | rpy2 | Python | result |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for stack in "${STACKS[@]}"; do cat "$OUT/${stack%%:*}-rpy2-${stack#*:}.row"; done
} >"$OUT/matrix.md"

echo
echo "Compatibility matrix ($((SECONDS - T_START)) s; logs in $OUT):"
cat "$OUT/matrix.md"
for stack in "${STACKS[@]}"; do
    f=$OUT/${stack%%:*}-rpy2-${stack#*:}.json
    [[ -f $f ]] || continue
    printf '%-12s install %s s, tests %s s\n' "$stack" \
        "$(grep -o '"install_seconds": [0-9]*' "$f" | grep -o '[0-9]*$')" \
        "$(grep -o '"test_seconds": [0-9]*' "$f" | grep -o '[0-9]*$')"
done
exit "$FAILED"
