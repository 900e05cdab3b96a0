# The random effects with their conditional SDs.
# The R half of toolbox/random_effects.py; conventions in common.R.

lmm_tb_ranef_table <- function(fit) {
    lmm_tb_run(function() {
        d <- as.data.frame(lme4::ranef(fit, condVar = TRUE))
        list(group = as.character(d$grpvar), term = as.character(d$term),
             level = as.character(d$grp), condval = d$condval, condsd = d$condsd)
    })
}
