"""The IPython magics ``%lmer``, ``%%lmer``, ``%glmer``, ``%%glmer``: glue only.

Parse the call into a :class:`~lmermagic.request.FitRequest`, resolve the data
in the user's namespace, fit through :mod:`lmermagic.api`, push the requested
names back. Nothing below this module knows IPython exists.
"""

from __future__ import annotations

import argparse
import re
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

from .errors import DataError, FormulaError, LmerError, did_you_mean
from .request import FitRequest

if TYPE_CHECKING:
    from .model import LmerModel

__all__ = ["LmerMagics", "code_part", "resolve_data", "split_options", "strip_comments"]

_TOKEN = re.compile(r"""\s*("[^"]*"|'[^']*'|\S+)""")
# "name = formula" on a --compare line; a formula has no top-level "=".
_NAMED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)\s*(.+)$")


def split_options(line: str, parser: argparse.ArgumentParser) -> tuple[list[str], str]:
    """Split ``line`` into option tokens and the free text after them.

    Options come first; the formula starts at the first token that is not an
    option or an option's value, and is returned verbatim (quotes, spacing and
    all), so that argparse never sees or mangles it.
    """
    takes_value: dict[str, bool] = {}
    for action in parser._actions:
        for opt in action.option_strings:
            takes_value[opt] = action.nargs != 0
    tokens: list[str] = []
    pos = 0
    while True:
        m = _TOKEN.match(line, pos)
        if not m:
            return tokens, ""
        tok = m.group(1)
        key = tok.split("=", 1)[0]
        if tok == "--":
            return tokens, line[m.end():].strip()
        if key not in takes_value:
            return tokens, line[m.start(1):].strip()
        tokens.append(tok)
        pos = m.end()
        if takes_value[key] and "=" not in tok:
            m = _TOKEN.match(line, pos)
            if not m:
                return tokens, ""
            value = m.group(1)
            if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) > 1:
                value = value[1:-1]
            tokens.append(value)
            pos = m.end()


def _options_in(formula: str, parser: argparse.ArgumentParser) -> list[str]:
    """The magic's options written inside the formula text (``... --ml``)."""
    known = {opt for action in parser._actions for opt in action.option_strings}
    return [tok for tok in re.findall(r"(?<![\w.])--?[A-Za-z][\w-]*", formula)
            if tok.split("=", 1)[0] in known]


def code_part(line: str) -> str:
    """One line without its ``#`` comment; quotes and R's backticks hide a ``#``."""
    quote = ""
    for i, ch in enumerate(line):
        if ch == "#" and not quote:
            return line[:i]
        if ch in "\"'`" and (not quote or ch == quote):
            quote = "" if quote else ch
    return line


def strip_comments(text: str) -> str:
    """Drop ``#`` comments (outside quotes) and join the lines into one."""
    return " ".join(filter(None, (code_part(line).strip() for line in text.splitlines())))


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would sys.exit()
        raise DataError(f"{self.prog}: {message}")


def resolve_data(ns: dict[str, Any], expr: str) -> Any:
    """``-d EXPR`` in the user's namespace; an unknown name or a failing one: DataError."""
    if expr.isidentifier() and expr not in ns:
        raise DataError(f"'{expr}' is not defined."
                        + did_you_mean(expr, [k for k in ns if not k.startswith("_")]))
    try:
        return eval(expr, ns)  # the user's own expression, in their own kernel
    except Exception as exc:
        hint = " Quote an expression with spaces: -d 'df[df.x > 1]'."
        raise DataError(f"-d {expr}: evaluating it raised {type(exc).__name__}: "
                        f"{exc}.{hint if isinstance(exc, SyntaxError) else ''}") from exc


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

    progress = Bool(
        True, help="Show a live status line (time, evaluations, deviance) for fits, and "
                   "the bootstrap's count of refits, running longer than about a second.",
    ).tag(config=True)

    def _run(self, func: Any, kind: str, line: str, cell: str | None) -> Any:
        parser = _parser(func)
        tokens, rest = split_options(line, parser)
        args = parser.parse_args(tokens)
        if args.compare:
            return self._compare(kind, args, rest, cell)
        # A trailing ";" only silences the output (IPython); it is not formula.
        formula = strip_comments(cell if cell is not None else rest).rstrip(" ;")
        if cell is not None and rest:
            raise DataError(
                f"%%{kind}: options go on the first line and the formula in the cell body; "
                f"found {rest!r} after the options."
            )
        if not formula:
            raise DataError(f"%{kind}: no formula given. Example: %{kind} -d df y ~ x + (1 | g)")
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
        )
        from .api import fit

        from .status import live_status

        with live_status(f"fitting {formula}", self.shell, enabled=self.progress):
            return fit(request, data)

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
