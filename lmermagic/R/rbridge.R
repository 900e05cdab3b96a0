# lmermagic's R side: rbridge.py sys.source()s every .R file below R/ into one
# private environment whose parent is baseenv(): nothing here is attached,
# nothing is written to the global environment, and every non-base function is
# called through its namespace so that the user's R session cannot change our
# results. This file is the R half of rbridge.py: data frames built from
# Python's columns, results flattened for the trip back, versions.

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

# codes: 1-based integer codes (NA allowed); uniques: level labels in the
# order pandas found them. sort_levels: order levels as R's factor() would.
lmm_factor <- function(codes, uniques, sort_levels, ordered) {
    if (sort_levels && length(uniques) > 1L) {
        s <- sort(uniques)
        codes <- match(uniques, s)[codes]
        uniques <- s
    }
    attr(codes, "levels") <- uniques
    class(codes) <- if (ordered) c("ordered", "factor") else "factor"
    codes
}

lmm_frame <- function(cols, names, nrow) {
    names(cols) <- names
    attr(cols, "row.names") <- c(NA_integer_, -as.integer(nrow))
    class(cols) <- "data.frame"
    cols
}

# ---------------------------------------------------------------------------
# Results to Python
# ---------------------------------------------------------------------------

# A nested list of atomic vectors flattened into a few pieces that cross to
# Python in one go (Python's rbridge.unpack rebuilds it): one row of `spec`
# per node in depth-first order (kind, length, pool offset, offset of its
# names in the string pool or -1, rows and columns of a matrix or -1), and pools
# of doubles, integers (logicals included) and strings. Top-level elements
# named in `keep` stay R objects (kind 7, offset into `kept`).
# Kinds: 0 NULL, 1 list, 2 named list, 3 double, 4 integer, 5 logical,
# 6 character, 7 kept, 8 long double vector and 9 long integer vector (offset
# into `vecs`).
lmm_pack <- function(x, keep = character()) {
    spec <- list(); dbl <- list(); int <- list(); chr <- list(); kept <- list()
    vecs <- list()
    n_dbl <- 0L; n_int <- 0L; n_chr <- 0L
    node <- function(kind, len, off = -1L, names_off = -1L, dims = c(-1L, -1L)) {
        spec[[length(spec) + 1L]] <<- c(kind, len, off, names_off, dims)
    }
    add_names <- function(nm) {
        if (is.null(nm)) return(-1L)
        off <- n_chr
        chr[[length(chr) + 1L]] <<- nm
        n_chr <<- n_chr + length(nm)
        off
    }
    walk <- function(v) {
        if (is.null(v)) return(node(0L, 0L))
        if (is.list(v)) {
            nm <- names(v)
            node(if (is.null(nm)) 1L else 2L, length(v), -1L, add_names(nm))
            for (e in v) walk(e)
            return(invisible())
        }
        if (is.factor(v)) v <- as.character(v)
        d <- dim(v)
        dims <- if (length(d) == 2L) d else c(-1L, -1L)
        names_off <- if (is.null(d)) add_names(names(v)) else -1L
        len <- length(v)
        if (len >= lmm_pack_own && (is.double(v) || is.integer(v))) {
            # long vectors (fitted values, residuals) go as they are: copying them
            # into a pool would only allocate one more large block per fit
            vecs[[length(vecs) + 1L]] <<- as.vector(v)
            node(if (is.double(v)) 8L else 9L, len, length(vecs) - 1L, names_off, dims)
        } else if (is.double(v)) {
            node(3L, len, n_dbl, names_off, dims)
            dbl[[length(dbl) + 1L]] <<- as.vector(v); n_dbl <<- n_dbl + len
        } else if (is.integer(v) || is.logical(v)) {
            node(if (is.logical(v)) 5L else 4L, len, n_int, names_off, dims)
            int[[length(int) + 1L]] <<- as.integer(v); n_int <<- n_int + len
        } else if (is.character(v)) {
            node(6L, len, n_chr, names_off, dims)
            chr[[length(chr) + 1L]] <<- as.vector(v); n_chr <<- n_chr + len
        } else {
            stop(sprintf("internal: cannot pack a %s", class(v)[1L]))
        }
    }
    if (length(keep) && is.list(x) && !is.null(names(x))) {
        nm <- names(x)
        node(2L, length(x), -1L, add_names(nm))
        for (i in seq_along(x)) {
            if (nm[[i]] %in% keep) {
                node(7L, 1L, length(kept))
                kept[[length(kept) + 1L]] <- x[[i]]
            } else {
                walk(x[[i]])
            }
        }
    } else {
        walk(x)
    }
    # The strings go as one UTF-8 string and their lengths in bytes (-1: NA):
    # one string crosses much faster than many.
    chr <- enc2utf8(as.character(unlist(chr, use.names = FALSE)))
    na <- is.na(chr)
    chr[na] <- ""
    nbytes <- nchar(chr, type = "bytes")
    nbytes[na] <- -1L
    list(spec = as.integer(unlist(spec, use.names = FALSE)),
         dbl = as.double(unlist(dbl, use.names = FALSE)),
         int = as.integer(unlist(int, use.names = FALSE)),
         chr = paste(chr, collapse = ""),
         nbytes = as.integer(nbytes),
         kept = kept,
         vecs = vecs)
}

# Numeric vectors at least this long cross on their own (kinds 8 and 9).
lmm_pack_own <- 4096L

# lmm_pack's result as one raw vector, for the disk cache (cache.R): Python's
# lmermagic.packed.from_bytes reads it back into the values unpack() gives,
# with no R and no R package. Layout: "LMMPACK1", six little-endian int32
# counts (nodes x 6, doubles, integers, strings, bytes of the strings, long
# vectors), kind and length of each long vector, then spec, doubles,
# integers, the strings' byte lengths, the strings, the long vectors.
lmm_pack_raw <- function(x) {
    p <- lmm_pack(x)
    if (length(p$kept)) stop("internal: R objects cannot be written as bytes")
    ints <- function(v) writeBin(as.integer(v), raw(), size = 4L, endian = "little")
    dbls <- function(v) writeBin(as.double(v), raw(), size = 8L, endian = "little")
    chr <- charToRaw(p$chr)
    shapes <- unlist(lapply(p$vecs, function(v) c(if (is.double(v)) 8L else 9L,
                                                   length(v))))
    c(charToRaw("LMMPACK1"),
      ints(c(length(p$spec), length(p$dbl), length(p$int), length(p$nbytes),
             length(chr), length(p$vecs))),
      ints(shapes), ints(p$spec), dbls(p$dbl), ints(p$int), ints(p$nbytes), chr,
      unlist(lapply(p$vecs, function(v) if (is.double(v)) dbls(v) else ints(v))))
}

lmm_versions <- function() {
    pk <- c("lme4", "lmerTest", "numDeriv", "pbkrtest", "Matrix", "emmeans", "geepack", "car",
            "glmmTMB", "ordinal")
    v <- vapply(pk, function(p) {
        if (nzchar(system.file(package = p))) as.character(utils::packageVersion(p))
        else NA_character_
    }, "")
    c(R = paste(R.version$major, R.version$minor, sep = "."), R_home = R.home(), v)
}

# What R has loaded so far (start-up cost is loading namespaces).
lmm_loaded_namespaces <- function() loadedNamespaces()
