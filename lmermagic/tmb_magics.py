"""``%glmmtmb`` and ``%%glmmtmb``: glmmTMB fits in the notebook (glue only: parse,
call :func:`lmermagic.tmb.glmmtmb`, present)."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand, \
    output_can_be_silenced
from IPython.core.magic_arguments import argument, magic_arguments

from .errors import DataError, LmerError
from .magic_text import magic_formula, resolve_data, split_options
from .magics import _parser, lmer_settings

__all__ = ["TmbMagics"]


@magics_class
class TmbMagics(Magics):
    """``%glmmtmb`` and ``%%glmmtmb``."""

    @output_can_be_silenced
    @no_var_expand
    @magic_arguments()
    @argument("-d", "--data", metavar="EXPR",
              help="the DataFrame: a name or a Python expression in the notebook (required)")
    @argument("-o", "--out", metavar="NAME", help="store the fitted model as NAME")
    @argument("--family", metavar="F", default="gaussian",
              help="gaussian (default), binomial, poisson, nbinom1, nbinom2, Gamma, "
                   "beta_family, tweedie, truncated_poisson, truncated_nbinom2; a link as "
                   "\"Gamma(link='log')\"")
    @argument("--zi", metavar="FORMULA", help="zero-inflation (hurdle with a truncated "
              "family) formula, one-sided: '~ x'")
    @argument("--disp", metavar="FORMULA", help="dispersion formula, one-sided: '~ x'")
    @argument("--reml", action="store_true", help="REML instead of maximum likelihood")
    @argument("--weights", metavar="COL", help="column of prior weights")
    @argument("--offset", metavar="COL", help="column to use as offset")
    @argument("--factors", metavar="COL[,COL...]", help="columns to turn into R factors")
    @argument("--allow", metavar="NAME", action="append", default=[],
              help="allow this R function in the formulas (repeatable)")
    @argument("--timeout", metavar="SECONDS", type=float, help="stop R after this long")
    @argument("--isolate", action="store_true",
              help="fit in a worker process that Ctrl-C and --timeout end within a second "
                   "and whose running out of memory spares the notebook (default: "
                   "%%config LmerMagics.isolate)")
    @argument("--memory-limit", metavar="GB", type=float,
              help="with --isolate: the worker's memory limit (default: %%config "
                   "LmerMagics.memory_limit, 0 = 80%% of the available memory)")
    @argument("-q", "--quiet", action="store_true", help="return nothing, display nothing")
    @line_cell_magic
    def glmmtmb(self, line: str, cell: str | None = None) -> Any:
        """Fit a mixed model with R's glmmTMB (zero-inflated, hurdle, dispersion models).

        Usage::

            %glmmtmb -d DATA [-o NAME] [--family F] [--zi FORMULA] [--disp FORMULA]
                     [--isolate [--memory-limit GB]] FORMULA

            %%glmmtmb -d DATA [options]
            FORMULA (over several lines, # comments allowed)

        Example::

            %glmmtmb -d sal -o zinb --family nbinom2 --zi "~ mined" count ~ mined + (1 | site)

        is ``glmmTMB(count ~ mined + (1 | site), data = sal, family = nbinom2,
        ziformula = ~ mined)`` in R.
        """
        try:
            return self._run(line, cell)
        except LmerError as exc:
            raise exc.with_traceback(None) from None

    def _run(self, line: str, cell: str | None) -> Any:
        from .tmb import glmmtmb  # not at %load_ext: it imports pandas

        parser = _parser(TmbMagics.glmmtmb)
        tokens, rest = split_options(line, parser)
        args = parser.parse_args(tokens)
        formula = magic_formula("glmmtmb", rest, cell, "-d df --family poisson y ~ x + (1 | g)")
        if not args.data:
            raise DataError("%glmmtmb: give the data with -d NAME.")
        ns: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        data = resolve_data(ns, args.data)
        # LmerMagics' settings (%config LmerMagics.allow, .timeout, .isolate,
        # .memory_limit, .cache_dir) apply to %glmmtmb as to %lmer
        lm = lmer_settings(self.shell)
        allow = tuple(lm.allow if lm is not None else ()) + tuple(args.allow)
        timeout = args.timeout if args.timeout is not None else (
            lm.timeout if lm is not None else None)
        limit = args.memory_limit if args.memory_limit is not None else (
            lm.memory_limit if lm is not None else None)
        model = glmmtmb(formula, data, family=args.family, ziformula=args.zi,
                        dispformula=args.disp, reml=args.reml, weights=args.weights,
                        offset=args.offset, factors=args.factors,
                        allow_functions=allow, timeout=timeout,
                        isolate=bool(args.isolate or (lm is not None and lm.isolate)),
                        memory_limit=limit or None,
                        cache_dir=(lm.cache_dir if lm is not None else "") or None,
                        data_name=args.data, name=args.out)
        if args.out:
            ns[args.out] = model
        return None if args.quiet else model
