suppressMessages({library(lme4); library(lmerTest)})
strip <- function(fit) {
  rc <- list()
  for (s in slotNames(fit)) {
    o <- slot(fit, s)
    if (is(o, "envRefClass")) {
      cls <- class(o)
      flds <- names(o$getRefClass()$fields())
      vals <- lapply(flds, function(f) o$field(f)); names(vals) <- flds
      vals <- vals[!vapply(vals, function(v) is(v, "externalptr"), NA)]
      if (!is.null(vals$family)) vals$family <- list(family = vals$family$family, link = vals$family$link)
      rc[[s]] <- list(class = as.character(cls), package = attr(cls, "package"), fields = vals)
      slot(fit, s, check = FALSE) <- NULL
    }
  }
  list(fit = fit, rc = rc)
}
rebuild <- function(x) {
  fit <- x$fit
  for (s in names(x$rc)) {
    r <- x$rc[[s]]
    def <- methods::getClass(r$class, where = asNamespace(r$package))
    f <- r$fields
    if (!is.null(f$family)) f$family <- get(f$family$family, envir = asNamespace("stats"))(link = f$family$link)
    o <- if (is.null(f$family)) methods::new(def) else methods::new(def, family = f$family, y = f$y)
    env <- as.environment(o)
    for (n in names(f)) {
      store <- paste0(".->", n)
      if (exists(store, envir = env, inherits = FALSE)) {
        locked <- bindingIsLocked(store, env)
        if (locked) unlockBinding(store, env)
        assign(store, f[[n]], envir = env)
        if (locked) lockBinding(store, env)
      }
      else o$field(n, f[[n]])
    }
    slot(fit, s) <- o
  }
  fit
}
m <- lmerTest::lmer(Reaction ~ Days + (Days|Subject), sleepstudy)
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
for (fit in list(m, g)) {
  raw <- serialize(strip(fit), NULL)
  back <- rebuild(unserialize(raw))
  print(all.equal(predict(back), predict(fit)))
  print(all.equal(fixef(refit(back)), fixef(fit)))
  print(all.equal(simulate(back, seed=1), simulate(fit, seed=1)))
  print(all.equal(predict(back, newdata = fit@frame[1:5,]), predict(fit, newdata = fit@frame[1:5,])))
  if (is(fit, "lmerModLmerTest")) print(all.equal(anova(back), anova(fit)))
  print(all.equal(confint(back, method="Wald"), confint(fit, method="Wald")))
}
