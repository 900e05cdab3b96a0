"""The IPython magics ``%lmer``, ``%%lmer``, ``%glmer``, ``%%glmer``: glue only.

Parse the call into a :class:`~lmermagic.request.FitRequest`, resolve the data
in the user's namespace, fit through :mod:`lmermagic.api`, push the requested
names back. Nothing below this module knows IPython exists.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from IPython.core.magic import (
    Magics,
    line_cell_magic,
    magics_class,
    no_var_expand,
    output_can_be_silenced,
)
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Float, List, Unicode

from .errors import DataError, FormulaError, LmerError
from .magic_text import (
    _NAMED,
    _options_in,
    _RaisingParser,
    code_part,
    resolve_data,
    magic_formula,
    split_options,
    strip_comments,
    table_calls,
)
from .request import FitRequest

if TYPE_CHECKING:
    from .model import LmerModel

__all__ = ["LmerMagics", "code_part", "resolve_data", "split_options", "strip_comments"]

def lmer_settings(shell: Any) -> LmerMagics | None:
    """The shell's ``%config LmerMagics`` (its settings apply to ``%glmmtmb`` and
    ``%clmm`` too), or None."""
    return next((c for c in getattr(shell, "configurables", [])
                 if isinstance(c, LmerMagics)), None)


def _parser(func: Any) -> argparse.ArgumentParser:
    parser = func.parser
    parser.__class__ = _RaisingParser
    return parser


_OPTIONS = [
    argument("-d", "--data", required=False, metavar="EXPR",
             help="the DataFrame: a name or a Python expression in the notebook (required)"),
    argument("-o", "--out", metavar="NAME", help="store the fitted model as NAME"),
    argument("--coefs", metavar="NAME", help="store the fixed-effects table as NAME"),
    argument("--ranef", metavar="NAME", help="store the random effects (dict) as NAME"),
    argument("--varcorr", metavar="NAME", help="store the variance components as NAME"),
    argument("--family", metavar="F",
             help="GLMM family: binomial, poisson, \"Gamma(link='log')\", ...; "
                  "on %%lmer switches to glmer"),
    argument("--ml", action="store_true", help="maximum likelihood instead of REML"),
    argument("--ddf", metavar="METHOD",
             help="satterthwaite (default), kenward-roger or lme4 (no df, no p)"),
    argument("--factors", metavar="COL[,COL...]",
             help="columns to turn into R factors (as.factor)"),
    argument("--weights", metavar="COL", help="column of prior weights"),
    argument("--offset", metavar="COL", help="column to use as offset"),
    argument("--contrasts", metavar="COL=TYPE[,...]",
             help="contrasts per factor: treatment, sum, helmert, poly, SAS or "
                  "treatment:LEVEL (reference level), e.g. Evit=sum"),
    argument("--nagq", metavar="N", type=int, help="glmer: adaptive quadrature points"),
    argument("--optimizer", metavar="NAME",
             help="bobyqa, Nelder_Mead, nloptwrap or nlminbwrap"),
    argument("--maxfun", metavar="N", type=int, help="optimizer's maximum evaluations"),
    argument("--timeout", metavar="SECONDS", type=float,
             help="stop R after this many seconds (default: %%config LmerMagics.timeout)"),
    argument("--allow", metavar="FUN[,FUN...]",
             help="allow these extra functions in the formula"),
    argument("--isolate", action="store_true",
             help="fit in a worker process that Ctrl-C and --timeout end within a second "
                  "and whose running out of memory spares the notebook "
                  "(default: %%config LmerMagics.isolate)"),
    argument("--allow-large", action="store_true",
             help="fit even a design the size check refuses (too much memory or time)"),
    argument("--memory-limit", metavar="GB", type=float,
             help="with --isolate: the worker's memory limit (default: %%config "
                  "LmerMagics.memory_limit, 0 = 80%% of the available memory)"),
    argument("--compare", action="store_true",
             help="cell magic: one formula per line (optionally 'name = formula'); fit "
                  "each and return R's likelihood-ratio comparison, anova(m1, m2, ...)"),
    argument("--plot", metavar="KIND[,...]", help="show plots of the fit (matplotlib): ranef, "
             "coefs, diagnostics, predict:X or predict:X:BY, e.g. --plot ranef,predict:Days"),
    argument("--emmeans", metavar="COL[,COL...]",
             help="show the estimated marginal means of these variables (emmeans), within "
                  "each level of --by, at the --at values; --pairwise adds the contrasts"),
    argument("--emtrends", metavar="VAR",
             help="show the slope of VAR (emtrends) at each value of --by, e.g. "
                  "--emtrends Days --by mod --at mod=sd for simple slopes"),
    argument("--by", metavar="COL[,COL...]", help="with --emmeans/--emtrends: per level of"),
    argument("--at", metavar="COL=V[,V...]", action="append",
             help="with --emmeans/--emtrends: reference-grid values, or COL=sd for mean "
                  "- SD, mean, mean + SD (repeatable)"),
    argument("--pairwise", action="store_true",
             help="with --emmeans/--emtrends: also their pairwise contrasts"),
    argument("-q", "--quiet", action="store_true",
             help="return nothing and display nothing (plots asked for are shown)"),
]


def _with_options(func: Any) -> Any:
    for opt in reversed(_OPTIONS):
        func = opt(func)
    return magic_arguments()(func)


@magics_class
class LmerMagics(Magics):
    """Magics fitting lme4 mixed models on DataFrames of the notebook.

    Settings for the session: ``%config LmerMagics.timeout = 600``,
    ``%config LmerMagics.allow = ['sinh']``, ``%config LmerMagics.ddf = 'kenward-roger'``,
    ``%config LmerMagics.isolate = True``, ``%config LmerMagics.max_seconds = 600``,
    ``%config LmerMagics.progress = False`` (no live status or bootstrap progress line),
    ``%config LmerMagics.warm_start = 'mixedlm'`` (start lme4 from mixedlm's estimate),
    ``%config LmerMagics.cache_dir = '~/.cache/lmermagic'`` (keep fits across restarts).
    """

    timeout = Float(
        0.0, help="Seconds after which a fit is stopped (LmerTimeoutError); 0: no limit."
    ).tag(config=True)
    allow = List(
        Unicode(), default_value=[],
        help="Functions allowed in formulas beyond lmermagic.ALLOWED_FUNCTIONS.",
    ).tag(config=True)
    ddf = Unicode(
        "satterthwaite",
        help="Default df method of %lmer: satterthwaite, kenward-roger or lme4.",
    ).tag(config=True)
    isolate = Bool(
        False, help="Fit in a worker process that Ctrl-C and timeouts end at once."
    ).tag(config=True)
    memory_limit = Float(
        0.0, help="An isolated fit's memory limit in GB; 0: 80% of the available memory."
    ).tag(config=True)
    max_memory_share = Float(
        0.5, help="Refuse a design needing more than this share of the available memory."
    ).tag(config=True)
    max_seconds = Float(
        300.0, help="Refuse a design whose rank check alone is estimated to take longer."
    ).tag(config=True)
    cache_dir = Unicode("", help="Directory keeping fits across kernel restarts; empty: "
                        "in memory only.").tag(config=True)
    warm_start = Unicode("", help="Start %lmer's optimizer from a cheap estimate: "
                         "'subsample', 'mixedlm' or 'true' (mixedlm if installed); empty: "
                         "lme4's default start.").tag(config=True)

    progress = Bool(
        True, help="Show a live status line (time, evaluations, deviance) for fits, and "
                   "the bootstrap's count of refits, running longer than about a second.",
    ).tag(config=True)

    def _run(self, func: Any, kind: str, line: str, cell: str | None) -> Any:
        parser = _parser(func)
        tokens, rest = split_options(line, parser)
        args = parser.parse_args(tokens)
        tables = table_calls(args)  # checked before a long fit, not after it
        if args.compare:
            if tables:
                raise DataError("--emmeans/--emtrends show one model's tables; with "
                                "--compare, call them on each model (name = formula).")
            return self._compare(kind, args, rest, cell)
        formula = magic_formula(kind, rest, cell, "-d df y ~ x + (1 | g)")
        try:
            model = self._fit(kind, args, formula, args.out)
        except (FormulaError, DataError) as exc:
            late = _options_in(formula, parser)
            if not late:
                raise
            raise type(exc)(f"{exc}\n{' '.join(late)} came after the formula, where it is "
                            f"formula text: options go before the formula, "
                            f"%{kind} [options] FORMULA.") from None
        ns = self._user_ns
        if args.out:
            ns[args.out] = model
        if args.coefs:
            ns[args.coefs] = model.coefs
        if args.ranef:
            ns[args.ranef] = model.ranef
        if args.varcorr:
            ns[args.varcorr] = model.varcorr
        if args.plot:
            from IPython.display import display

            from .toolbox.plots.spec import plot_calls

            for method, pos in plot_calls(args.plot):
                display(getattr(model, method)(*pos))
        for method, args_, kw in tables:
            from IPython.display import display

            result = getattr(model, method)(*args_, **kw)
            for frame in result.values() if isinstance(result, dict) else [result]:
                display(frame)
        return None if args.quiet else model

    def _compare(self, kind: str, args: argparse.Namespace, rest: str,
                 cell: str | None) -> Any:
        if cell is None or rest:
            raise DataError(f"--compare works on a cell: %%{kind} -d df --compare, then one "
                            "formula per line (optionally 'name = formula').")
        from .toolbox import compare

        names, models = [], []
        for i, text in enumerate(filter(None, (strip_comments(x).rstrip(" ;")
                                               for x in cell.splitlines())), start=1):
            m = _NAMED.match(text)
            name, formula = (m.group(1), m.group(2)) if m else (f"model{i}", text)
            names.append(name)
            models.append(self._fit(kind, args, formula, name))
            if m:
                self._user_ns[name] = models[-1]
        if len(models) < 2:
            raise DataError("--compare needs at least two formulas, one per line.")
        table = compare(*models, names=names)
        if args.out:
            self._user_ns[args.out] = table
        return None if args.quiet else table

    def _fit(self, kind: str, args: argparse.Namespace, formula: str,
             name: str | None) -> LmerModel:
        if not args.data:
            raise DataError(f"%{kind}: -d/--data is required: %{kind} -d df {formula}")
        data = resolve_data(self._user_ns, args.data)
        family = args.family
        use_glmer = kind == "glmer" or family is not None
        extra = tuple(self.allow) + tuple(
            f.strip() for f in (args.allow or "").split(",") if f.strip())
        control: dict[str, object] = {}
        if args.optimizer:
            control["optimizer"] = args.optimizer
        if args.maxfun:
            control["maxfun"] = args.maxfun
        request = FitRequest.build(
            formula,
            kind="glmer" if use_glmer else "lmer",
            reml=not args.ml,
            ddf=args.ddf or self.ddf,
            family=family,
            factors=args.factors,
            weights=args.weights,
            offset=args.offset,
            contrasts=args.contrasts,
            control=control or None,
            nagq=args.nagq,
            data_name=args.data,
            name=name,
            extra_functions=extra,
            timeout=args.timeout if args.timeout is not None else self.timeout,
            allow_large=args.allow_large,
            memory_share=self.max_memory_share,
            max_seconds=self.max_seconds,
            isolate=args.isolate or self.isolate,
            memory_limit=(args.memory_limit if args.memory_limit is not None
                          else self.memory_limit) or None,
            cache_dir=self.cache_dir or None,
            warm_start=self._warm_start() if not use_glmer else None,
        )
        from .api import fit

        from .status import live_status

        with live_status(f"fitting {formula}", self.shell, enabled=self.progress):
            return fit(request, data)

    def _warm_start(self) -> str | None:
        from .warmstart import resolve

        value = self.warm_start.strip()
        return resolve(True if value.lower() == "true" else value or None)

    @property
    def _user_ns(self) -> dict[str, Any]:
        if self.shell is None:
            raise LmerError("the lmermagic magics need a running IPython shell")
        return self.shell.user_ns

    @output_can_be_silenced
    @no_var_expand
    @_with_options
    @line_cell_magic
    def lmer(self, line: str, cell: str | None = None) -> LmerModel | None:
        """Fit a linear mixed model with lme4/lmerTest on a DataFrame.

        Usage::

            %lmer  [options] FORMULA
            %%lmer [options]
            FORMULA, over several lines  # comments allowed

        The formula is lme4's: fixed effects plus random-effect terms in
        parentheses, ``(1 | g)``, ``(1 + x | g)``, ``(1 | g1) + (1 | g2)``,
        ``(1 | g1/g2)``. Every variable must be a column of the data. The magic
        returns the model (``m = %lmer ...`` works; a bare call shows a card);
        with ``-q`` it returns nothing. ``--family`` switches to glmer.

        Example::

            %load_ext lmermagic
            import lmermagic
            sleep = lmermagic.datasets.load("sleepstudy")
            %lmer -d sleep -o m  Reaction ~ Days + (Days | Subject)
            m.coefs        # estimate, std_error, df, statistic, p_value, conf_low, conf_high
            m.varcorr      # group, var1, var2, vcov, sdcor

            %%lmer -d sleep --ml --coefs tab
            Reaction ~ Days +      # fixed effect of days of deprivation
              (Days | Subject)     # random intercept and slope per subject

        Compare nested models (R's ``anova(m0, m1)``; REML fits are refitted
        with ML as R does)::

            %%lmer -d sleep --compare
            m0 = Reaction ~ Days + (1 | Subject)
            m1 = Reaction ~ Days + (Days | Subject)
        """
        try:
            return self._run(LmerMagics.lmer, "lmer", line, cell)
        except LmerError as exc:
            raise exc.with_traceback(None) from None

    @output_can_be_silenced
    @no_var_expand
    @_with_options
    @line_cell_magic
    def glmer(self, line: str, cell: str | None = None) -> LmerModel | None:
        """Fit a generalized linear mixed model with lme4::glmer on a DataFrame.

        Usage::

            %glmer  [options] FORMULA
            %%glmer [options]
            FORMULA

        ``--family`` defaults to binomial; also poisson, ``"Gamma(link='log')"``,
        inverse.gaussian. Other options as for ``%lmer``.

        Example::

            cbpp = lmermagic.datasets.load("cbpp")
            %glmer -d cbpp -o g  cbind(incidence, size - incidence) ~ period + (1 | herd)
            g.coefs        # z statistics, df = inf
        """
        try:
            return self._run(LmerMagics.glmer, "glmer", line, cell)
        except LmerError as exc:
            raise exc.with_traceback(None) from None
