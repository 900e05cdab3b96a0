#!/usr/bin/env bash
# Install the Debian packages lmermagic needs (R, lme4, lmerTest, pbkrtest, ...)
# when any is missing (broom.mixed: the tests compare tidy tables with it;
# performance, car, effectsize: R2, ICC and model checks; glmmTMB and ordinal: the
# models beyond lme4). Debian 12 has no DHARMa
# or MuMIn: the tests that need them skip. Idempotent: does nothing when all are present.
set -euo pipefail
PKGS="r-base-core r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-geepack r-cran-emmeans r-cran-broom.mixed
r-cran-performance r-cran-car r-cran-effectsize r-cran-glmmtmb r-cran-ordinal chromium chromium-driver"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Debian's own python3 makes venvs only with python3-venv (ensurepip)
PY=${PYTHON:-python3}
if [ "$(command -v "$PY")" = /usr/bin/python3 ] && ! "$PY" -c "import ensurepip" 2>/dev/null; then
    missing="$missing python3-venv"
fi
if [ -z "$missing" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing R packages:$missing" >&2
    echo "This is not a Debian/Ubuntu system: install R and, in R," >&2
    echo '  install.packages(c("lme4", "lmerTest", "pbkrtest", "geepack", "emmeans"))' >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "Missing Debian packages:$missing; run as root: apt-get install$missing" >&2
        exit 1
    fi
fi
echo "Installing Debian packages:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
