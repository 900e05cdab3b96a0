#!/usr/bin/env bash
# Compatibility matrix: lmermagic's test suite in Debian roots (debootstrap minbase) with
# each rpy2 line the root's R allows.
#
#   scripts/compat/matrix.sh                 # all stacks: trixie:3.5 trixie:3.6 sid:3.5 sid:3.6
#   scripts/compat/matrix.sh trixie:3.6      # one stack (SUITE:RPY2LINE); several may be given
#   scripts/compat/matrix.sh --rebuild sid:3.5   # rebuild the roots used, then run
#   scripts/compat/matrix.sh --build-only    # build/verify the roots, run no tests
#   scripts/compat/matrix.sh --list          # the known stacks
#
# Runs as root, unattended (CI=true, no stdin). Roots are built once and reused while their
# stamp matches this recipe. Every run copies the working tree (tracked + untracked, not
# ignored) fresh into /src/lmermagic of the root, installs it into the stack's venv
# (/opt/venv-rpy2-LINE, kept in the root with pip's cache) and runs pytest.
#
# Environment:
#   LMM_COMPAT_ROOTS      where the roots live (default /var/cache/lmermagic-compat)
#   LMM_COMPAT_OUT        logs and records (default <repo>/build/compat)
#   LMM_COMPAT_MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   LMM_COMPAT_TIMEOUT    seconds for one stack's install + tests (default 3600)
#   LMM_COMPAT_PYTEST_ARGS  extra pytest arguments (default none: the full suite)
#   CI, OPENBLAS_*, PIP_DEFAULT_TIMEOUT are passed into the root.
#
# Outputs in $LMM_COMPAT_OUT: <suite>-rpy2-<line>.log (pytest), .install.log (pip),
# .json (versions + result), root-<suite>.log (root build), matrix.md (the table).
# Exit status: 0 when every stack's tests passed, 1 otherwise (test failures, or an
# ERROR: a root build, download or install that failed), 2 on bad usage.
set -Eeuo pipefail

RECIPE=5   # bump when the way roots are built changes: roots with another stamp are rebuilt
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ROOTS=${LMM_COMPAT_ROOTS:-/var/cache/lmermagic-compat}
OUT=${LMM_COMPAT_OUT:-$REPO/build/compat}
MIRROR=${LMM_COMPAT_MIRROR:-http://deb.debian.org/debian}
STACK_TIMEOUT=${LMM_COMPAT_TIMEOUT:-3600}
CA=/etc/ssl/certs/ca-certificates.crt

ALL_STACKS=(trixie:3.5 trixie:3.6 sid:3.5 sid:3.6)
# rpy2 lines each suite's R admits (3.6.6+ needs R >= 4.5; 3.5.17 builds on R 4.5/4.6)
declare -A SUITE_LINES=([trixie]="3.5 3.6" [sid]="3.5 3.6")

# Debian packages of every root (no recommends): R and the R packages lmermagic uses, plus
# what building rpy2 from source (cffi API mode, linked against libR) needs: gcc, libc and
# Python headers, make (`R CMD config` runs it), and the -dev packages behind the libraries
# that `R CMD config --ldflags` names (R 4.5/4.6: -lR -lpcre2-8 -ldeflate -lzstd -llzma -lbz2
# -lz -ltirpc -licuuc -licui18n; rpy2 adds -lblas). The browser test (JupyterLab in
# headless Chromium) needs chromium and chromium-driver.
PACKAGES="r-base-core r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-geepack r-cran-emmeans
r-cran-broom.mixed r-cran-numderiv python3 python3-venv python3-dev gcc libc6-dev make libffi-dev pkg-config
libpcre2-dev libdeflate-dev libzstd-dev liblzma-dev libbz2-dev zlib1g-dev libtirpc-dev libicu-dev
libblas-dev chromium chromium-driver"
PACKAGES=$(tr -s ' \n' '  ' <<<"$PACKAGES" | sed 's/ $//')   # one line, single spaces

pins_for() {
    case $1 in
        3.5) printf '%s\n' 'rpy2==3.5.17' ;;
        3.6) printf '%s\n' 'rpy2==3.6.9' 'rpy2-rinterface==3.6.7' 'rpy2-robjects==3.6.6' ;;
        *) return 1 ;;
    esac
}

log() { printf '[compat %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,27p' "$HERE/matrix.sh" | sed 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------- arguments
ORIG_ARGS=("$@")
REBUILD=0 BUILD_ONLY=0 STACKS=()
while (($#)); do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --list) printf '%s\n' "${ALL_STACKS[@]}"; exit 0 ;;
        --rebuild) REBUILD=1 ;;
        --build-only) BUILD_ONLY=1 ;;
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
        "LMM_COMPAT_PYTEST_ARGS=${LMM_COMPAT_PYTEST_ARGS:-}")
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
    printf 'recipe=%s\nsuite=%s\nmirror=%s\npackages=%s\n' "$RECIPE" "$1" "$MIRROR" "$PACKAGES"
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
    printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' \
        'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
        'path-include=/usr/share/locale/locale.alias' >"$tmp/etc/dpkg/dpkg.cfg.d/90lmermagic-compat"
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod +x "$tmp/usr/sbin/policy-rc.d"

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
    in_root "$tmp" apt-get clean >>"$blog" 2>&1 || true
    umount_all
    stamp_text "$suite" >"$tmp/$STAMP"     # the stamp is written last ...
    if [[ -e $final ]]; then safe_rm "$final.old"; mv "$final" "$final.old"; fi
    mv "$tmp" "$final"                     # ... and only a renamed root is used
    safe_rm "$final.old"
    log "root $suite built in $((SECONDS - t0)) s ($(du -sh --one-file-system "$final" | cut -f1))"
    echo "root $suite built in $((SECONDS - t0)) s" >>"$blog"
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
    local suite=$1 line=$2 r=$ROOTS/$1 name=$1-rpy2-$2 rc=0 t0=$SECONDS
    local helper=/opt/lmm-compat
    log "stack $suite:$line: install + pytest (logs: $OUT/$name.install.log, $OUT/$name.log)"
    rm -f "$OUT/$name".{log,install.log,json,row}
    pins_for "$line" >"$r$helper/constraints-rpy2-$line.txt"
    root_env
    timeout --kill-after=60 "$STACK_TIMEOUT" env -i "${ROOT_ENV[@]}" chroot "$r" \
        bash "$helper/in_root.sh" "$suite" "$line" "/opt/venv-rpy2-$line" \
        "$helper/constraints-rpy2-$line.txt" "$helper/out/$name" 9>&- || rc=$?
    if ((rc == 124 || rc == 137)); then
        echo "ERROR: stack $suite:$line timed out after $STACK_TIMEOUT s" | tee -a "$OUT/$name.log" >&2
    fi
    if [[ ! -f $OUT/$name.row ]]; then
        printf '| %s | ? | ? | ? | %s | ? | ERROR: stack did not complete (exit %s) |\n' \
            "$suite" "$line" "$rc" >"$OUT/$name.row"
    fi
    if [[ -f $OUT/$name.log ]]; then
        echo "---- $suite:$line ($((SECONDS - t0)) s): tail of $OUT/$name.log" >&2
        if grep -q '^=* short test summary info =*$' "$OUT/$name.log"; then
            sed -n '/^=* short test summary info =*$/,$p' "$OUT/$name.log" | tail -n 25 >&2
        else
            tail -n 12 "$OUT/$name.log" >&2
        fi
        echo "----" >&2
    fi
    return "$rc"
}

run_suite() {   # run_suite SUITE LINE... : fresh tree copy, mounts, each stack, unmount
    local suite=$1 r=$ROOTS/$1 line rc=0; shift
    copy_tree "$r/src/lmermagic"
    mkdir -p "$r/opt/lmm-compat/out"
    cp "$HERE/in_root.sh" "$HERE/record.py" "$r/opt/lmm-compat/"
    enter_root "$r"
    mnt "$r/opt/lmm-compat/out" --bind "$OUT"
    for line; do run_stack "$suite" "$line" || rc=1; done
    umount_all
    return "$rc"
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
declare -A ROOT_ERR=()
for suite in "${SUITES[@]}"; do
    if ((REBUILD)) || ! root_ok "$suite"; then
        # in a subshell (with its own EXIT trap) so that one suite's failure lets the next run
        guarded build_root "$suite"
        if ((GUARD_RC)); then ROOT_ERR[$suite]=1; FAILED=1; fi
    else
        log "reusing root $ROOTS/$suite (stamp matches recipe $RECIPE)"
    fi
done
((BUILD_ONLY)) && exit "$FAILED"

for suite in "${SUITES[@]}"; do
    lines=()
    for stack in "${STACKS[@]}"; do [[ ${stack%%:*} == "$suite" ]] && lines+=("${stack#*:}"); done
    if [[ -n ${ROOT_ERR[$suite]:-} ]]; then
        for line in "${lines[@]}"; do
            printf '| %s | ? | ? | ? | %s | ? | ERROR: root build failed (see root-%s.log) |\n' \
                "$suite" "$line" "$suite" >"$OUT/$suite-rpy2-$line.row"
        done
        continue
    fi
    guarded run_suite "$suite" "${lines[@]}"
    rc=$GUARD_RC
    ((rc == 0)) || FAILED=1
    for line in "${lines[@]}"; do
        [[ -f $OUT/$suite-rpy2-$line.row ]] ||
            printf '| %s | ? | ? | ? | %s | ? | ERROR: stack did not run (exit %s) |\n' \
                "$suite" "$line" "$rc" >"$OUT/$suite-rpy2-$line.row"
    done
done

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
