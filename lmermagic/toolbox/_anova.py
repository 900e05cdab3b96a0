"""Which R call ``m.anova(type=, ddf=, engine=, statistic=)`` is: the engine, its
type, test statistic and df, checked before R runs (pure Python)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataError
from ..request import normalize_ddf

_TYPES = {"1": 1, "i": 1, "2": 2, "ii": 2, "3": 3, "iii": 3}
_ENGINES = {"lmertest": "lmertest", "car": "car", "joint_tests": "joint_tests",
            "joint-tests": "joint_tests", "emmeans": "joint_tests"}
_STATISTICS = {"f": "F", "chisq": "Chisq", "chi-square": "Chisq", "wald": "Chisq"}
_JOINT_DDF = ("kenward-roger", "satterthwaite", "asymptotic")


@dataclass(frozen=True)
class AnovaPlan:
    """The arguments of R's lmm_tb_anova and the R packages it needs.

    engine: "lmertest", "lme4" (a glmer model's sequential table), "car" or
    "joint_tests"; type: 1, 2, 3 or None (joint_tests); ddf: lmerTest's df
    method, or emmeans' lmer.df (None: emmeans' default); statistic: car's
    test.statistic ("F" or "Chisq").
    """

    engine: str
    type: int | None
    ddf: str | None
    statistic: str | None
    packages: tuple[str, ...]


def plan(glmm: bool, type: int | str | None, ddf: str | None, engine: str | None,
         statistic: str | None, reml: bool = True) -> AnovaPlan:
    kind = _type(type)
    eng = _engine(engine, kind, glmm)
    stat = _statistic(statistic, eng, glmm)
    if eng == "car":
        if kind == 1:
            raise DataError("car::Anova has no Type I tests: use type=2 or 3, or "
                            "m.anova(type=1) for the sequential table.")
        if stat == "F":
            if ddf is not None and normalize_ddf(ddf) != "kenward-roger":
                raise DataError(f"car's F tests have Kenward-Roger df; ddf={ddf!r} is not "
                                "available (engine='lmerTest' has Satterthwaite's).")
            if not reml:
                raise DataError("car's Kenward-Roger F tests need a REML fit: refit with "
                                "reml=True, or use statistic='Chisq'.")
        elif ddf is not None:
            raise DataError("Wald chi-square tests have no denominator df: drop ddf=.")
        packages = ("car", "pbkrtest") if stat == "F" else ("car",)
        return AnovaPlan("car", kind or 2, None, stat, packages)
    if eng == "joint_tests":
        if kind is not None:
            raise DataError("joint_tests has no type=: it tests each term's contrasts among "
                            "the estimated marginal means; for Type II/III Wald tests use "
                            f"engine='car' (m.anova(type={kind}, engine='car')).")
        lmer_df = None
        if ddf is not None:
            key = str(ddf).strip().lower()
            if key not in _JOINT_DDF:
                key = normalize_ddf(key)
            if glmm or key not in _JOINT_DDF:
                raise DataError(f"ddf={ddf!r}: joint_tests of " + (
                    "a glmer model are asymptotic, drop ddf=." if glmm else
                    "an lmer model takes 'kenward-roger', 'satterthwaite' or 'asymptotic'."))
            lmer_df = key
        return AnovaPlan("joint_tests", None, lmer_df, None, ("emmeans",))
    if glmm:  # type=1: lme4's sequential table
        if ddf is not None:
            raise DataError("a glmer model's sequential table has no df: drop ddf=.")
        return AnovaPlan("lme4", 1, "lme4", None, ())
    method = normalize_ddf(ddf or "satterthwaite")
    packages = ("lmerTest", "pbkrtest") if method == "kenward-roger" else ("lmerTest",)
    return AnovaPlan("lmertest", kind or 3, method, None, packages)


def _type(type: int | str | None) -> int | None:
    if type is None:
        return None
    key = str(type).strip().lower()
    if key not in _TYPES:
        raise DataError(f"type={type!r}: use 3 (Type III), 2 or 1.")
    return _TYPES[key]


def _engine(engine: str | None, kind: int | None, glmm: bool) -> str:
    if engine is None:
        if not glmm:
            return "lmertest"
        return "joint_tests" if kind is None else "car" if kind > 1 else "lme4"
    key = _ENGINES.get(str(engine).strip().lower())
    if key is None:
        raise DataError(f"engine={engine!r}: use 'lmerTest', 'car' or 'joint_tests'.")
    if key == "lmertest" and glmm:
        raise DataError("lmerTest's F tests are for lmer models; for a glmer model use "
                        "engine='joint_tests' (the default) or engine='car' (type=2 or 3).")
    return key


def _statistic(statistic: str | None, engine: str, glmm: bool) -> str | None:
    if statistic is None:
        return ("Chisq" if glmm else "F") if engine == "car" else None
    stat = _STATISTICS.get(str(statistic).strip().lower())
    if stat is None:
        raise DataError(f"statistic={statistic!r}: use 'F' or 'Chisq' (car's test.statistic).")
    if engine != "car":
        raise DataError("statistic= chooses car's test statistic: add engine='car'.")
    if stat == "F" and glmm:
        raise DataError("car's F tests (Kenward-Roger) are for lmer models; for a glmer model "
                        "use statistic='Chisq' (Wald chi-square, the default) or "
                        "engine='joint_tests'.")
    return stat
