"""``%clmm`` and ``%%clmm``: ordinal mixed models with ``ordinal::clmm`` (glue
only: parse, call :func:`lmermagic.clmm`, present)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand, \
    output_can_be_silenced
from IPython.core.magic_arguments import argument, magic_arguments

from .errors import DataError, LmerError
from .magic_text import magic_formula, resolve_data, split_options
from .magics import _parser, lmer_settings

if TYPE_CHECKING:
    from .clmm_model import ClmmModel

__all__ = ["ClmmMagics"]


@magics_class
class ClmmMagics(Magics):
    """``%clmm``; ``--timeout`` and ``--allow`` default to ``%config LmerMagics``'s."""

    @output_can_be_silenced
    @no_var_expand
    @magic_arguments()
    @argument("-d", "--data", metavar="EXPR",
              help="the DataFrame: a name or a Python expression in the notebook (required)")
    @argument("-o", "--out", metavar="NAME", help="store the fitted model as NAME")
    @argument("--link", metavar="LINK",
              help="logit (default), probit, cloglog, loglog or cauchit")
    @argument("--threshold", metavar="KIND",
              help="flexible (default), symmetric, symmetric2 or equidistant")
    @argument("--allow", metavar="FUN[,FUN...]",
              help="allow these extra functions in the formula")
    @argument("--timeout", metavar="SECONDS", type=float,
              help="stop R after this many seconds (default: %%config LmerMagics.timeout)")
    @argument("-q", "--quiet", action="store_true", help="return nothing, display nothing")
    @line_cell_magic
    def clmm(self, line: str, cell: str | None = None) -> ClmmModel | None:
        """Fit an ordinal (cumulative link) mixed model with R's ordinal::clmm.

        Usage::

            %clmm  [options] FORMULA
            %%clmm [options]
            FORMULA

        The response must be an ordered pandas Categorical (its category order
        is the order of the levels, lowest first). Example::

            wine = lmermagic.datasets.load("wine", package="ordinal")
            %clmm -d wine -o m --link probit rating ~ temp + contact + (1 | judge)
            m.thresholds

        is ``ordinal::clmm(rating ~ temp + contact + (1 | judge), data = wine,
        link = "probit")``.
        """
        try:
            return self._run(line, cell)
        except LmerError as exc:
            raise exc.with_traceback(None) from None

    def _run(self, line: str, cell: str | None) -> ClmmModel | None:
        from .clmm_api import fit_clmm
        from .clmm_fit import ClmmRequest

        parser = _parser(ClmmMagics.clmm)
        tokens, rest = split_options(line, parser)
        args = parser.parse_args(tokens)
        formula = magic_formula("clmm", rest, cell, "-d wine rating ~ temp + (1 | judge)")
        if not args.data:
            raise DataError(f"%clmm: -d/--data is required: %clmm -d df {formula}")
        if self.shell is None:
            raise LmerError("the lmermagic magics need a running IPython shell")
        ns = self.shell.user_ns
        data = resolve_data(ns, args.data)
        lm = lmer_settings(self.shell)
        extra = tuple(lm.allow if lm is not None else ()) + tuple(
            f.strip() for f in (args.allow or "").split(",") if f.strip())
        timeout = args.timeout if args.timeout is not None else (
            lm.timeout if lm is not None else None)
        request = ClmmRequest.build(formula, link=args.link or "logit",
                                    threshold=args.threshold or "flexible",
                                    data_name=args.data, name=args.out,
                                    extra_functions=extra, timeout=timeout)
        model = fit_clmm(request, data)
        if args.out:
            ns[args.out] = model
        return None if args.quiet else model
