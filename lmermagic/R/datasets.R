# Example data sets from R packages (the R half of datasets.py).
# sys.source()d by rbridge.py, with every file of R/, into one private
# environment whose parent is baseenv() (see rbridge.R).

lmm_dataset <- function(name, package) {
    env <- new.env(parent = emptyenv())
    utils::data(list = name, package = package, envir = env)
    if (!exists(name, envir = env, inherits = FALSE)) stop("no data set")
    d <- get(name, envir = env)
    as.data.frame(d)
}
