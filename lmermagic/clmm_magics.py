"""``%clmm`` and ``%%clmm``: ordinal mixed models with ``ordinal::clmm`` (glue
only: parse, call :func:`lmermagic.clmm`, present)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand, \
    output_can_be_silenced
from IPython.core.magic_arguments import argument, magic_arguments

from .errors import DataError, LmerError
from .magic_text import resolve_data, split_options, strip_comments
from .magics import _parser

if TYPE_CHECKING:
    from .clmm_model import ClmmModel

__all__ = ["ClmmMagics"]


@magics_class
class ClmmMagics(Magics):
    """``%clmm``; ``--timeout`` and ``--allow`` default to ``%config LmerMagics``'s."""

    def _config(self, name: str, default: Any) -> Any:
        for c in getattr(self.shell, "configurables", []):
            if type(c).__name__ == "LmerMagics":
                return getattr(c, name, default)
        return default

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
        if cell is not None and rest:
            raise DataError("%%clmm: options go on the first line and the formula in the cell "
                            f"body; found {rest!r} after the options.")
        formula = strip_comments(cell if cell is not None else rest).rstrip(" ;")
        if not formula:
            raise DataError("%clmm: no formula given. Example: %clmm -d wine rating ~ temp + "
                            "(1 | judge)")
        if not args.data:
            raise DataError(f"%clmm: -d/--data is required: %clmm -d df {formula}")
        if self.shell is None:
            raise LmerError("the lmermagic magics need a running IPython shell")
        ns = self.shell.user_ns
        data = resolve_data(ns, args.data)
        extra = tuple(self._config("allow", ())) + tuple(
            f.strip() for f in (args.allow or "").split(",") if f.strip())
        timeout = args.timeout if args.timeout is not None else self._config("timeout", None)
        request = ClmmRequest.build(formula, link=args.link or "logit",
                                    threshold=args.threshold or "flexible",
                                    data_name=args.data, name=args.out,
                                    extra_functions=extra, timeout=timeout)
        model = fit_clmm(request, data)
        if args.out:
            ns[args.out] = model
        return None if args.quiet else model
