"""An ordinal mixed model to fit (``ordinal::clmm``): the parsed call, and the
closed lists of links and threshold structures ordinal offers. No pandas, no R:
the magics' Tab completion reads the lists at ``%load_ext``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import DataError
from .request import _timeout
from .rformula import formula_text, no_nul

__all__ = ["LINKS", "THRESHOLDS", "ClmmRequest"]

LINKS = ("logit", "probit", "cloglog", "loglog", "cauchit")
THRESHOLDS = ("flexible", "symmetric", "symmetric2", "equidistant")

def _choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise DataError(f"{what}={value!r} is not one of ordinal's: {', '.join(allowed)}.")
    return value.strip().lower()


@dataclass(frozen=True)
class ClmmRequest:
    """One ordinal mixed model to fit."""

    formula: str
    link: str = "logit"
    threshold: str = "flexible"
    data_name: str = "data"
    name: str | None = None
    extra_functions: tuple[str, ...] = ()
    timeout: float | None = None

    @classmethod
    def build(cls, formula: Any, *, link: Any = "logit", threshold: Any = "flexible",
              data_name: str = "data", name: str | None = None,
              extra_functions: tuple[str, ...] | list[str] = (),
              timeout: float | None = None) -> ClmmRequest:
        for what, value in (("the data's name", data_name), ("the model's name", name)):
            if isinstance(value, str):
                no_nul(value, what)
        return cls(formula=formula_text(formula), link=_choice(link, LINKS, "link"),
                   threshold=_choice(threshold, THRESHOLDS, "threshold"),
                   data_name=data_name, name=name,
                   extra_functions=tuple(extra_functions), timeout=_timeout(timeout))

    def r_options(self) -> dict[str, object]:
        # "kind" keeps the cache keys of clmm fits apart from lme4's
        return {"kind": "clmm", "link": self.link, "threshold": self.threshold}
