"""The IPython magics ``%lmer_many``, ``%%lmer_many``, ``%glmer_many`` and
``%%glmer_many``: many models in one cell, glue only (parse, hand to
:func:`lmermagic.lmer_many`, push the result)."""

from __future__ import annotations

import argparse
import fnmatch
from typing import TYPE_CHECKING, Any

from IPython.core.magic import (
    Magics,
    line_cell_magic,
    magics_class,
    no_var_expand,
    output_can_be_silenced,
)
from IPython.core.magic_arguments import argument, magic_arguments

from .errors import DataError, LmerError, did_you_mean
from .magics import (
    _NAMED,
    LmerMagics,
    _parser,
    resolve_data,
    split_options,
    strip_comments,
)

if TYPE_CHECKING:
    from .toolbox.many_tables import ManyModels

__all__ = ["ManyMagics"]

_OPTIONS = [
    argument("-d", "--data", metavar="EXPR", help="the DataFrame (required)"),
    argument("-o", "--out", metavar="NAME", help="store the ManyModels as NAME"),
    argument("--coefs", metavar="NAME", help="store the stacked coefficient table as NAME"),
    argument("--responses", metavar="COL[,COL...]",
             help="fit the formula's right-hand side to each of these columns; shell "
                  "patterns match columns, e.g. --responses 'gene_*'"),
    argument("--by", metavar="COL[,COL...]", help="one model per distinct value of these"),
    argument("--workers", metavar="N", type=int,
             help="up to N worker processes, used when they pay off (default: 1, here)"),
    argument("--backend", metavar="NAME", help="serial, processes or dask (a LocalCluster)"),
    argument("--p-adjust", metavar="METHOD", default="BH",
             help="R's p.adjust method across models: BH (default), BY, holm, bonferroni, "
                  "none"),
    argument("--family", metavar="F", help="GLMM family (%%glmer_many; default binomial)"),
    argument("--ml", action="store_true", help="maximum likelihood instead of REML"),
    argument("--ddf", metavar="METHOD", help="satterthwaite (default) or lme4"),
    argument("--factors", metavar="COL[,COL...]", help="columns to turn into R factors"),
    argument("--weights", metavar="COL", help="column of prior weights"),
    argument("--offset", metavar="COL", help="column to use as offset"),
    argument("--allow", metavar="FUN[,FUN...]", help="allow these extra formula functions"),
    argument("--timeout", metavar="SECONDS", type=float,
             help="stop every worker after this many seconds"),
    argument("-q", "--quiet", action="store_true", help="return nothing, display nothing"),
]


def _with_options(func: Any) -> Any:
    for opt in reversed(_OPTIONS):
        func = opt(func)
    return magic_arguments()(func)


def _names(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _responses(text: str, columns: list[str]) -> list[str]:
    """Column names and shell patterns -> the columns, in the data's order
    for a pattern."""
    out: list[str] = []
    for item in _names(text):
        hits = [c for c in columns if fnmatch.fnmatchcase(c, item)] \
            if any(ch in item for ch in "*?[") else [item]
        if not hits:
            raise DataError(f"--responses: no column matches {item!r}."
                            + did_you_mean(item, columns))
        out += [h for h in hits if h not in out]
    return out


@magics_class
class ManyMagics(Magics):
    """``%lmer_many`` and ``%glmer_many``; settings are LmerMagics' (``%config
    LmerMagics.timeout``, ``.allow``, ``.ddf``, ``.progress``)."""

    def _settings(self) -> LmerMagics | None:
        for c in getattr(self.shell, "configurables", []):
            if isinstance(c, LmerMagics):
                return c
        return None

    def _run(self, func: Any, kind: str, line: str, cell: str | None) -> Any:
        parser = _parser(func)
        tokens, rest = split_options(line, parser)
        args = parser.parse_args(tokens)
        if not args.data:
            raise DataError(f"%{kind}: -d/--data is required: %{kind} -d df --responses "
                            "y1,y2 ~ x + (1 | g)")
        data = resolve_data(self.shell.user_ns if self.shell is not None else {}, args.data)
        formula: str | dict[str, str]
        if cell is not None:
            if rest:
                raise DataError(f"%%{kind}: options go on the first line, formulas in the "
                                f"cell body; found {rest!r} after the options.")
            lines = [x for x in (strip_comments(t).rstrip(" ;") for t in cell.splitlines())
                     if x]
            named = [_NAMED.match(x) for x in lines]
            if len(lines) <= 1 and not any(named):
                formula = lines[0] if lines else ""
            elif all(named):
                formula = {m.group(1): m.group(2) for m in named if m}
            else:
                formula = {f"model{i}": x for i, x in enumerate(lines, 1)}
        else:
            formula = strip_comments(rest).rstrip(" ;")
        if not formula:
            raise DataError(f"%{kind}: no formula given. Example: %{kind} -d df --responses "
                            "y1,y2 ~ x + (1 | g)")
        return self._fit(kind, args, formula, data)

    def _fit(self, kind: str, args: argparse.Namespace, formula: str | dict[str, str],
             data: Any) -> ManyModels | None:
        from . import convert
        from .many_api import glmer_many, lmer_many

        settings = self._settings()
        columns = list(convert.as_pandas(data, args.data).columns)
        options: dict[str, Any] = {
            "responses": _responses(args.responses, columns) if args.responses else None,
            "by": _names(args.by) or None,
            "backend": args.backend, "workers": args.workers, "p_adjust": args.p_adjust,
            "timeout": args.timeout if args.timeout is not None else
            (settings.timeout or None if settings else None),
            "progress": settings.progress if settings else True,
            "factors": _names(args.factors) or None, "weights": args.weights,
            "offset": args.offset,
            "allow_functions": [*(settings.allow if settings else []), *_names(args.allow)],
        }
        if kind == "glmer_many":
            result = glmer_many(formula, data, family=args.family or "binomial", **options)
        else:
            if args.family:
                raise DataError("--family is for %glmer_many.")
            result = lmer_many(formula, data, reml=not args.ml,
                               ddf=args.ddf or (settings.ddf if settings else "satterthwaite"),
                               **options)
        ns = self.shell.user_ns if self.shell is not None else {}
        if args.out:
            ns[args.out] = result
        if args.coefs:
            ns[args.coefs] = result.coefs
        return None if args.quiet else result

    @output_can_be_silenced
    @no_var_expand
    @_with_options
    @line_cell_magic
    def lmer_many(self, line: str, cell: str | None = None) -> ManyModels | None:
        """Fit many linear mixed models and return their tables (ManyModels).

        Usage::

            %lmer_many -d df --responses y1,y2,y3  ~ x + (1 | g)     # per response
            %lmer_many -d df --responses 'gene_*'  ~ x + (1 | g)     # columns by pattern
            %lmer_many -d df --by site             y ~ x + (1 | g)   # per subset
            %%lmer_many -d df                                        # a formula grid
            slope     = y ~ x + (x | g)
            intercept = y ~ x + (1 | g)

        ``--workers N`` fits in N worker processes, ``--backend dask`` on a
        Dask LocalCluster; the tables are the same either way. The result has
        ``coefs`` (with ``p_adjusted``), ``glance``, ``varcorr``, ``errors``,
        ``warnings`` and ``tidy()``.

        Example::

            %load_ext lmermagic
            %lmer_many -d wide -o res --responses 'y*' --workers 2  ~ Days + (Days | Subject)
            res.coefs.query("term == 'Days'").sort_values("p_adjusted")
        """
        try:
            return self._run(ManyMagics.lmer_many, "lmer_many", line, cell)
        except LmerError as exc:
            raise exc.with_traceback(None) from None

    @output_can_be_silenced
    @no_var_expand
    @_with_options
    @line_cell_magic
    def glmer_many(self, line: str, cell: str | None = None) -> ManyModels | None:
        """Fit many generalized linear mixed models (lme4::glmer); as ``%lmer_many``.

        Example::

            %glmer_many -d df --family binomial --responses 'hit_*'  ~ period + (1 | herd)
        """
        try:
            return self._run(ManyMagics.glmer_many, "glmer_many", line, cell)
        except LmerError as exc:
            raise exc.with_traceback(None) from None
