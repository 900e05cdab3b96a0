# What Kenward-Roger costs on InstEval (issue 23, item 6): pbkrtest's adjusted covariance
# on growing subsets of InstEval (the rows of its first students), beside lme4's fit and
# lmerTest's Satterthwaite df on the same subsets, then the trend carried to all
# 73,421 rows.
#
#   Rscript benchmarks/kenward_roger.R INSTEVAL_CSV [OUT.md]
#
# pbkrtest forms the marginal covariance V = sigma^2 (I + Z Lambda Lambda' Z') and P, n x n
# matrices, and traces of products of them with each variance component's Z_i Z_i': its
# time grows about with n^2 to n^3 and its memory with n^2, so the whole data set is not
# attempted; the table says what the trend predicts for it.
a <- commandArgs(trailingOnly = TRUE)
csv <- a[[1]]
out <- if (length(a) >= 2) a[[2]] else ""
suppressPackageStartupMessages({
    library(lme4)
    library(lmerTest)
    library(pbkrtest)
})
fac <- c("s", "d", "studage", "lectage", "service", "dept")
full <- utils::read.csv(csv, colClasses = stats::setNames(rep("factor", length(fac)), fac))
f <- y ~ service + (1 | s) + (1 | d) + (1 | dept)
now <- function() as.numeric(Sys.time())
tm <- function(expr) { t0 <- now(); force(expr); now() - t0 }
students <- levels(full$s)
sizes <- c(50L, 100L, 200L)   # students; about 25 rows each (400: about 40 min)
rows <- list()
for (ns in sizes) {
    d <- droplevels(full[full$s %in% students[seq_len(ns)], ])
    t_fit <- tm(m <- lme4::lmer(f, d))
    mlt <- lmerTest::as_lmerModLmerTest(m)
    L <- diag(length(lme4::fixef(m)))[2, , drop = FALSE]
    t_sat <- tm(invisible(lmerTest::contest(mlt, L, ddf = "Satterthwaite")))
    invisible(gc(reset = TRUE))
    before <- sum(gc()[, 2])
    t_kr <- tm(v <- pbkrtest::vcovAdj(m))
    peak <- sum(gc()[, 6]) - before   # MB: largest use since the reset, less the start
    rows[[length(rows) + 1]] <- data.frame(n = nrow(d), fit = t_fit, sat = t_sat, kr = t_kr,
                                           mb = peak)
    message(sprintf("n = %d: fit %.2f s, Satterthwaite %.3f s, KR %.2f s, +%.0f MB",
                    nrow(d), t_fit, t_sat, t_kr, peak))
}
r <- do.call(rbind, rows)
N <- nrow(full)
slope_t <- unname(stats::coef(stats::lm(log(kr) ~ log(n), r))[2])
slope_m <- unname(stats::coef(stats::lm(log(mb) ~ log(n), r[r$mb > 0, ])))[2]
big <- utils::tail(r, 1)
pred_t <- big$kr * (N / big$n)^slope_t
pred_m <- 8 * N^2 / 2^20   # one dense n x n matrix of doubles, in MB
fmt <- function(s) if (s >= 1) sprintf("%.2f s", s) else sprintf("%.1f ms", 1000 * s)
lines <- c(
    sprintf("pbkrtest %s, lmerTest %s, lme4 %s; `%s` on the rows of InstEval's first students",
            as.character(packageVersion("pbkrtest")), as.character(packageVersion("lmerTest")),
            as.character(packageVersion("lme4")), deparse(f)),
    "",
    "| rows | lme4 fit | Satterthwaite df (one contrast) | Kenward-Roger `vcovAdj` | KR's extra memory |",
    "|---|---|---|---|---|",
    sprintf("| %s | %s | %s | %s | %.0f MB |", format(r$n, big.mark = ","), sapply(r$fit, fmt),
            sapply(r$sat, fmt), sapply(r$kr, fmt), r$mb),
    "",
    sprintf(paste("Kenward-Roger's time grows as n^%.1f and its memory as n^%.1f here.",
                  "Carried to all %s rows: about %s, and one dense %s x %s matrix alone",
                  "is %.0f GB."),
            slope_t, slope_m, format(N, big.mark = ","), fmt(pred_t), format(N, big.mark = ","),
            format(N, big.mark = ","), pred_m / 1024))
writeLines(lines)
if (nzchar(out)) writeLines(lines, out)
